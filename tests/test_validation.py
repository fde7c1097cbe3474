"""Bad input: a clear ValueError/TypeError naming the argument, and the model unchanged."""
import numpy as np
import pytest

import fastnn
from fastnn import Sequential
from fastnn.callbacks import EarlyStopping
from fastnn.layers import Dense, Dropout, Normalization
from fastnn.losses import BinaryCrossentropy, SparseCategoricalCrossentropy
from fastnn.optimizers import SGD, Adam
from fastnn.regularizers import L2

X = np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32)
Y = np.arange(20) % 3


@pytest.fixture
def model():
    fastnn.set_random_seed(0)
    m = Sequential([Dense(5, activation="relu"), Dense(3)])
    m.compile(loss=SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    m.fit(X, Y, epochs=1, verbose=0)
    return m


def snapshot(m):
    return [w.copy() for w in m.get_weights()], m.optimizer.iterations, \
        [s.copy() for s in m.optimizer._slots]


def assert_unchanged(m, snap):
    weights, iterations, slots = snap
    for a, b in zip(weights, m.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert m.optimizer.iterations == iterations
    for a, b in zip(slots, m.optimizer._slots, strict=True):
        np.testing.assert_array_equal(a, b)


def with_nan(a):
    a = np.array(a, dtype=float)
    a.flat[3] = np.nan
    return a


def with_inf(a):
    a = np.array(a, dtype=float)
    a.flat[5] = -np.inf
    return a


BAD_FIT = [
    ({"x": X[:, :3]}, ValueError, "x has 3 features, but the model expects 4"),
    ({"x": X[0]}, ValueError, "x must be 2-D"),
    ({"x": X[None]}, ValueError, "x must be 2-D"),
    ({"x": X[:0], "y": Y[:0]}, ValueError, "x must be non-empty"),
    ({"x": with_nan(X)}, ValueError, "x contains NaN or infinity"),
    ({"x": with_inf(X)}, ValueError, "x contains NaN or infinity"),
    ({"x": X.astype(complex)}, TypeError, "x must be a real-valued array"),
    ({"x": np.array([["a"] * 4] * 20)}, TypeError, "x must be a real-valued array"),
    ({"y": Y[:-1]}, ValueError, "y has 19 rows but x has 20"),
    ({"y": Y + 1}, ValueError, r"y labels must lie in \[0, 2\]"),
    ({"y": -Y}, ValueError, r"y labels must lie in \[0, 2\]"),
    ({"y": Y + 0.5}, ValueError, "y must hold integer class labels"),
    ({"y": with_nan(Y)}, ValueError, "y contains NaN or infinity"),
    ({"y": np.stack([Y, Y], 1)}, ValueError, r"y must hold integer labels of shape \(n,\)"),
    ({"y": None}, ValueError, "y is required"),
    ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
    ({"batch_size": 2.5}, TypeError, "batch_size must be an int"),
    ({"epochs": -1}, ValueError, "epochs must be >= 0"),
    ({"validation_split": 1.0}, ValueError, "validation_split must be < 1"),
    ({"validation_split": -0.1}, ValueError, "validation_split must be >= 0"),
    ({"validation_split": 1e-17}, ValueError, "leaves an empty training or validation set"),
    ({"validation_data": (X, Y[:-2])}, ValueError, "validation_data\\[1\\] has 18 rows"),
    ({"validation_data": X}, ValueError, "validation_data must be a tuple"),
    ({"validation_data": (X[:, :2], Y)}, ValueError, "validation_data\\[0\\] has 2 features"),
    ({"sample_weight": np.ones(19)}, ValueError, "sample_weight has 19 rows"),
    ({"sample_weight": -np.ones(20)}, ValueError, "sample_weight must be >= 0"),
    ({"sample_weight": with_nan(np.ones(20))}, ValueError, "sample_weight contains NaN"),
    ({"class_weight": [1, 2]}, TypeError, "class_weight must be a dict"),
    ({"class_weight": {0: -1.0}}, ValueError, r"class_weight\[0\] must be >= 0"),
    ({"class_weight": {0: 1.0}, "sample_weight": np.ones(20)}, ValueError, "not both"),
    ({"verbose": 3}, ValueError, "verbose must be"),
    ({"shuffle": "yes"}, TypeError, "shuffle must be a bool"),
    ({"callbacks": [print]}, TypeError, "callbacks entries must be"),
]


@pytest.mark.parametrize("kwargs, error, message", BAD_FIT)
def test_fit_rejects_bad_input_and_leaves_model_unchanged(model, kwargs, error, message):
    snap = snapshot(model)
    args = {"x": X, "y": Y, "epochs": 2, "verbose": 0} | kwargs
    with pytest.raises(error, match=message):
        model.fit(**args)
    assert_unchanged(model, snap)


@pytest.mark.parametrize("call", [
    lambda m: m.predict(X[:, :2]),
    lambda m: m.predict(with_nan(X)),
    lambda m: m(X[0]),
    lambda m: m.predict(X, batch_size=0),
    lambda m: m.evaluate(X, Y + 3),
    lambda m: m.evaluate(X[:5], Y),
    lambda m: m.set_weights(m.get_weights()[:-1]),
    lambda m: m.set_weights([w.T for w in m.get_weights()]),
    lambda m: m.set_weights([with_nan(w) if w.size > 5 else w for w in m.get_weights()]),
    lambda m: m.set_weights("weights"),
])
def test_inference_and_weights_reject_bad_input(model, call):
    snap = snapshot(model)
    with pytest.raises((ValueError, TypeError)):
        call(model)
    assert_unchanged(model, snap)


def test_set_weights_messages_name_the_problem(model):
    with pytest.raises(ValueError, match="weights has 3 arrays, the model expects 4"):
        model.set_weights(model.get_weights()[:3])
    with pytest.raises(ValueError, match=r"weights\[0\] has shape \(5, 4\), expected \(4, 5\)"):
        model.set_weights([w.T for w in model.get_weights()])


def test_fit_before_compile():
    m = Sequential([Dense(2)])
    with pytest.raises(ValueError, match="must be compiled first"):
        m.fit(X, Y)
    with pytest.raises(ValueError, match="must be compiled first"):
        m.evaluate(X, Y)
    assert not m.built


def test_fit_without_layers():
    m = Sequential()
    m.compile(loss="mse")
    with pytest.raises(ValueError, match="no layers"):
        m.fit(X, Y)


def test_unbuilt_model_weights():
    with pytest.raises(ValueError, match="not built"):
        Sequential([Dense(2)]).get_weights()


def test_failed_first_fit_does_not_build():
    m = Sequential([Dense(3)])
    m.compile(loss=SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(ValueError):
        m.fit(X, Y + 10, verbose=0)
    assert not m.built


@pytest.mark.parametrize("make, error, message", [
    (lambda: Dense(0), ValueError, "units must be >= 1"),
    (lambda: Dense(2.0), TypeError, "units must be an int"),
    (lambda: Dense(2, activation="gelu"), ValueError, "activation: unknown name 'gelu'"),
    (lambda: Dense(2, activation=np.tanh), TypeError, "activation must be"),
    (lambda: Dense(2, kernel_initializer="orthogonal"), ValueError, "kernel_initializer"),
    (lambda: Dense(2, kernel_regularizer=0.01), TypeError, "kernel_regularizer must be"),
    (lambda: Dense(2, kernel_regularizer=lambda w: 0.0), TypeError, "compiles only"),
    (lambda: Dense(2, bias_regularizer="l1_l2"), ValueError, "bias_regularizer: unknown name"),
    (lambda: Dense(2, input_dim=0), ValueError, "input_dim must be >= 1"),
    (lambda: Dropout(1.0), ValueError, "rate must be < 1"),
    (lambda: Dropout(-0.1), ValueError, "rate must be >= 0"),
    (lambda: L2(-1.0), ValueError, "l2 must be"),
    (lambda: Adam(learning_rate=-1e-3), ValueError, "learning_rate must be >= 0"),
    (lambda: SGD(learning_rate="fast"), TypeError, "learning_rate must be a number"),
    (lambda: SGD(momentum=1.5), ValueError, "momentum must be <= 1"),
    (lambda: Adam(beta_1=1.0), ValueError, "beta_1 must be < 1"),
    (lambda: BinaryCrossentropy(from_logits="yes"), TypeError, "from_logits must be a bool"),
    (lambda: Sequential(dtype="float16"), ValueError, "dtype must be"),
    (lambda: Sequential([Dense(2), "relu"]), TypeError, "layer must be a fastnn layer"),
    (lambda: EarlyStopping(mode="best"), ValueError, "mode must be"),
    (lambda: EarlyStopping(patience=-1), ValueError, "patience must be"),
    (lambda: Normalization(mean=[0.0]), ValueError, "mean and variance must be given together"),
    (lambda: fastnn.set_random_seed(-1), ValueError, "seed must be >= 0"),
    (lambda: fastnn.set_num_threads(0), ValueError, "n must be >= 1"),
])
def test_constructors_reject_bad_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize("kwargs, error, message", [
    ({"loss": "hinge"}, ValueError, "loss: unknown name 'hinge'"),
    ({"loss": None}, ValueError, "loss is required"),
    ({"loss": "mse", "optimizer": "adagrad"}, ValueError, "optimizer: unknown name"),
    ({"loss": "mse", "metrics": ["f1"]}, ValueError, "metrics: unknown name 'f1'"),
    ({"loss": "mse", "metrics": "accuracy"}, TypeError, "metrics must be a list"),
])
def test_compile_rejects_unknown_names(kwargs, error, message):
    m = Sequential([Dense(1)])
    with pytest.raises(error, match=message):
        m.compile(**kwargs)
    assert m.loss is None


def test_metric_incompatible_with_sparse_labels():
    m = Sequential([Dense(3)])
    m.compile(loss=SparseCategoricalCrossentropy(from_logits=True), metrics=["mae"])
    with pytest.raises(ValueError, match="needs dense targets"):
        m.fit(X, Y, verbose=0)


def test_dense_targets_shape_checked():
    m = Sequential([Dense(2)])
    m.compile(loss="mse")
    with pytest.raises(ValueError, match=r"y must have shape \(n, 2\)"):
        m.fit(X, np.ones((20, 3)), verbose=0)
    with pytest.raises(ValueError, match=r"y must have shape \(n, 2\)"):
        m.fit(X, np.ones(20), verbose=0)


def test_loss_objects_validate_their_arguments():
    loss = SparseCategoricalCrossentropy(from_logits=True)
    with pytest.raises(ValueError, match="y_true labels must lie in"):
        loss([3], [[0.1, 0.2, 0.3]])
    with pytest.raises(ValueError, match="y_pred contains NaN"):
        loss([0], [[np.nan, 0.2, 0.3]])


def test_callable_learning_rate_returning_negative_is_rejected():
    m = Sequential([Dense(3)])
    m.compile(optimizer=SGD(learning_rate=lambda step: -1.0),
              loss=SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(ValueError, match=r"learning_rate\(step\) must be >= 0"):
        m.fit(X, Y, verbose=0)


# float64 values beyond float32's range (|v| > 3.4e38) are finite where they are given but
# become inf once cast to the dtype the model computes in: each entry checks after the cast.
BIG = 1e39


def big(a, index=2):
    a = np.array(a, dtype=np.float64)
    a.flat[index] = BIG
    return a


def float32_model(loss="mse", n_out=1):
    fastnn.set_random_seed(0)
    m = Sequential([Dense(5, activation="relu"), Dense(n_out)])
    m.compile(loss=loss)
    m.fit(X, np.ones((20, n_out)), epochs=1, verbose=0)
    return m


YD = np.ones((20, 1))
OUT_OF_RANGE = [
    ("x", lambda m: m.fit(big(X), YD, verbose=0)),
    ("y", lambda m: m.fit(X, big(YD), verbose=0)),
    ("sample_weight", lambda m: m.fit(X, YD, sample_weight=big(np.ones(20)), verbose=0)),
    (r"validation_data\[0\]", lambda m: m.fit(X, YD, validation_data=(big(X), YD), verbose=0)),
    (r"validation_data\[1\]", lambda m: m.fit(X, YD, validation_data=(X, big(YD)), verbose=0)),
    (r"validation_data\[2\]", lambda m: m.fit(X, YD, validation_data=(X, YD, big(np.ones(20))),
                                      verbose=0)),
    ("x", lambda m: m.predict(big(X), verbose=0)),
    ("x", lambda m: m(big(X))),
    ("x", lambda m: m.evaluate(big(X), YD, verbose=0)),
    ("y", lambda m: m.evaluate(X, big(YD), verbose=0)),
    ("sample_weight", lambda m: m.evaluate(X, YD, sample_weight=big(np.ones(20)), verbose=0)),
    (r"weights\[0\]", lambda m: m.set_weights([big(w) if i == 0 else w
                                               for i, w in enumerate(m.get_weights())])),
    (r"weights\[3\]", lambda m: m.set_weights([big(w, 0) if i == 3 else w
                                               for i, w in enumerate(m.get_weights())])),
]


@pytest.mark.parametrize("name, call", OUT_OF_RANGE)
def test_values_beyond_float32_range_are_rejected_naming_the_argument(name, call):
    m = float32_model()
    snap = snapshot(m)
    with pytest.raises(ValueError, match=f"^{name} .*float32"):
        call(m)
    assert_unchanged(m, snap)


def test_class_weight_beyond_float32_range_is_rejected():
    fastnn.set_random_seed(0)
    m = Sequential([Dense(3, activation="softmax")])
    m.compile(loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"class_weight\[1\] .*float32"):
        m.fit(X, Y, class_weight={1: BIG}, verbose=0)
    assert not m.built


def test_the_same_values_are_accepted_by_a_float64_model():
    fastnn.set_random_seed(0)
    m = Sequential([Dense(1, kernel_initializer="zeros")], dtype="float64")
    m.compile(loss="mse", optimizer=SGD(learning_rate=0.0))
    m.fit(X, YD, sample_weight=np.full(20, 1e-300), verbose=0)
    out = m.predict(big(X), verbose=0)
    assert np.isfinite(out).all()


@pytest.mark.parametrize("name, stats", [
    ("mean", dict(mean=BIG, variance=1.0)),
    ("variance", dict(mean=0.0, variance=BIG)),
    ("mean", dict(mean=[0.0, 0.0, -BIG, 0.0], variance=[1.0] * 4)),
    ("variance", dict(mean=[0.0] * 4, variance=[1.0, 1.0, 1.0, BIG])),
])
def test_normalization_statistics_beyond_float32_range_are_rejected(name, stats):
    """Statistics are float64 until the layer joins a model: checked in its dtype then."""
    model = Sequential([Normalization(**stats), Dense(1)])
    model.compile(loss="mse")
    with pytest.raises(ValueError, match=f"^{name} .*float32"):
        model.build(4)
    with pytest.raises(ValueError, match=f"^{name} .*float32"):
        model.fit(X, YD, verbose=0)
    assert not model.built
    with pytest.raises(ValueError, match=f"^{name} .*float32"):
        Normalization(**stats)(X)     # a standalone layer computes in float32
    wide = Sequential([Normalization(**stats), Dense(1)], dtype="float64")
    wide.build(4)                     # the same statistics fit a float64 model
    np.testing.assert_array_equal(wide.layers[0].get_weights()[0],
                                  np.broadcast_to(stats["mean"], (4,)))


def test_normalization_adapt_beyond_float32_range_is_rejected():
    fastnn.set_random_seed(0)
    data = X.astype(np.float64) * 1e20       # finite in float32; its variance is not
    m = Sequential([Normalization(), Dense(1)])
    m.compile(loss="mse")
    m.fit(X, YD, epochs=1, verbose=0)
    snap = snapshot(m)
    with pytest.raises(ValueError, match="^data .*variance.*float32"):
        m.layers[0].adapt(data)
    assert_unchanged(m, snap)
    np.testing.assert_array_equal(m.predict(X), m.predict(X))
    alone = Normalization()
    with pytest.raises(ValueError, match="^data .*variance.*float32"):
        alone.adapt(data)
    assert not alone.built
    wide = Sequential([Normalization(), Dense(1)], dtype="float64")
    wide.build(4)
    wide.layers[0].adapt(data)
    assert np.isfinite(wide.layers[0].get_weights()[1]).all()


def test_loss_objects_check_range_after_the_cast():
    loss = SparseCategoricalCrossentropy(from_logits=True)
    with pytest.raises(ValueError, match="sample_weight .*float32"):
        loss([0], np.array([[0.1, 0.2, 0.3]], np.float32), sample_weight=[BIG])


def test_finiteness_check_allocates_nothing_the_size_of_the_data():
    # issue 11 part 4: np.isfinite(x).all() made a bool temporary of x.size bytes (25% of
    # float32 data) on every fit/predict; the compiled scan allocates nothing
    import tracemalloc

    from fastnn import _validation

    x = np.ones((20_000, 100), np.float32)  # 8 MB: its isfinite temporary would be 2 MB
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        out = _validation.as_features(x, "x", np.dtype(np.float32))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out is x  # float32 C-contiguous input is used as it is
    assert peak < x.nbytes // 100
    bad = x.copy()
    bad[-1, -1] = np.nan
    with pytest.raises(ValueError, match="x contains NaN or infinity"):
        _validation.as_features(bad, "x", np.dtype(np.float32))
