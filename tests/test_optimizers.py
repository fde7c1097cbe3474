"""fastnn.optimizers: names, configs, argument checks, schedules and clipping through fit."""
import math

import numpy as np
import pytest

import fastnn
from fastnn import Sequential, optimizers
from fastnn.layers import Dense
from fastnn.losses import SparseCategoricalCrossentropy
from fastnn.optimizers import SGD, Adam, AdamW, RMSprop, schedules

ALL = [
    lambda: SGD(), lambda: SGD(0.05, momentum=0.5, nesterov=True, clipnorm=1.5),
    lambda: Adam(), lambda: Adam(0.01, 0.8, 0.99, 1e-6, global_clipnorm=2.0),
    lambda: RMSprop(), lambda: RMSprop(0.01, 0.8, 0.25, 1e-5, True, clipvalue=0.5),
    lambda: AdamW(), lambda: AdamW(0.002, 0.1, 0.8, 0.9, 1e-6),
    lambda: SGD(schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True)),
    lambda: Adam(schedules.InverseTimeDecay(0.1, 10, 0.5)),
    lambda: RMSprop(schedules.PiecewiseConstantDecay([3, 8], [0.1, 0.01, 0.001])),
]


def _blobs(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4))
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)


def _fit(optimizer, epochs=3, dtype="float64"):
    x, y = _blobs()
    fastnn.set_random_seed(0)
    model = Sequential([Dense(6, activation="relu", input_dim=4), Dense(2)], dtype=dtype)
    model.compile(optimizer=optimizer, loss=SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=epochs, batch_size=16, shuffle=False, verbose=0)
    return model


@pytest.mark.parametrize("name, cls", [("sgd", SGD), ("adam", Adam), ("rmsprop", RMSprop),
                                       ("adamw", AdamW), ("RMSprop", RMSprop),
                                       ("AdamW", AdamW)])
def test_get_by_name(name, cls):
    opt = optimizers.get(name)
    assert type(opt) is cls
    assert opt.get_config() == cls().get_config()   # Keras defaults


def test_keras_defaults():
    assert RMSprop().get_config() == {
        "name": "rmsprop", "learning_rate": 0.001, "rho": 0.9, "momentum": 0.0,
        "epsilon": 1e-7, "centered": False, "clipnorm": None, "clipvalue": None,
        "global_clipnorm": None}
    config = AdamW().get_config()
    assert (config["learning_rate"], config["weight_decay"], config["beta_1"],
            config["beta_2"], config["epsilon"]) == (0.001, 0.004, 0.9, 0.999, 1e-7)


@pytest.mark.parametrize("make", ALL)
def test_config_round_trip(make):
    opt = make()
    config = opt.get_config()
    again = optimizers.from_config(config)
    assert type(again) is type(opt)
    assert again.get_config() == config
    assert type(opt).from_config(config).get_config() == config
    if isinstance(opt.learning_rate, schedules.LearningRateSchedule):
        assert type(again.learning_rate) is type(opt.learning_rate)
        assert again.learning_rate is not opt.learning_rate
        for step in (0, 1, 5, 17):
            assert again.learning_rate(step) == opt.learning_rate(step)


@pytest.mark.parametrize("make, error, match", [
    (lambda: RMSprop(rho=1.0), ValueError, "rho"),
    (lambda: RMSprop(rho="0.9"), TypeError, "rho"),
    (lambda: RMSprop(momentum=-0.1), ValueError, "momentum"),
    (lambda: RMSprop(epsilon=-1e-7), ValueError, "epsilon"),
    (lambda: RMSprop(centered=1), TypeError, "centered"),
    (lambda: RMSprop(learning_rate=-1.0), ValueError, "learning_rate"),
    (lambda: AdamW(weight_decay=None), ValueError, "weight_decay"),
    (lambda: AdamW(weight_decay=-0.1), ValueError, "weight_decay"),
    (lambda: AdamW(weight_decay="0"), TypeError, "weight_decay"),
    (lambda: AdamW(beta_1=1.0), ValueError, "beta_1"),
    (lambda: AdamW(beta_2=-0.5), ValueError, "beta_2"),
    (lambda: Adam(clipnorm=-1.0), ValueError, "clipnorm"),
    (lambda: SGD(clipvalue=float("inf")), ValueError, "clipvalue"),
    (lambda: RMSprop(global_clipnorm="1"), TypeError, "global_clipnorm"),
    (lambda: Adam(clipnorm=1.0, global_clipnorm=1.0), ValueError, "only one of"),
    (lambda: SGD(clipnorm=1.0, clipvalue=1.0), ValueError, "only one of"),
    (lambda: AdamW(clipvalue=1.0, global_clipnorm=1.0), ValueError, "only one of"),
    (lambda: schedules.ExponentialDecay(0.1, 0, 0.5), ValueError, "decay_steps"),
    (lambda: schedules.ExponentialDecay(-0.1, 10, 0.5), ValueError, "initial_learning_rate"),
    (lambda: schedules.ExponentialDecay(0.1, 10, -0.5), ValueError, "decay_rate"),
    (lambda: schedules.ExponentialDecay(0.1, 10, 0.5, staircase="yes"), TypeError, "staircase"),
    (lambda: schedules.InverseTimeDecay(0.1, -2, 0.5), ValueError, "decay_steps"),
    (lambda: schedules.InverseTimeDecay(0.1, 2, None), TypeError, "decay_rate"),
    (lambda: schedules.PiecewiseConstantDecay([1, 2], [0.1, 0.2]), ValueError, "boundaries"),
    (lambda: schedules.PiecewiseConstantDecay([2, 1], [0.1, 0.2, 0.3]), ValueError,
     "increasing"),
    (lambda: schedules.PiecewiseConstantDecay([1], [0.1, -0.2]), ValueError, "values"),
    (lambda: schedules.PiecewiseConstantDecay(1, [0.1]), TypeError, "boundaries"),
    (lambda: schedules.PiecewiseConstantDecay([1], "ab"), TypeError, "values"),
])
def test_arguments_are_checked(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_clipping_zero_means_off_as_in_keras():
    # Keras: `if self.clipnorm and self.clipnorm > 0`; 0 is a valid, inactive setting
    plain = _fit(Adam(0.01)).get_weights()
    for kwargs in ({"clipnorm": 0.0}, {"clipvalue": 0.0}, {"global_clipnorm": 0}):
        for a, b in zip(plain, _fit(Adam(0.01, **kwargs)).get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs", [{"clipnorm": 0.01}, {"clipvalue": 0.001},
                                    {"global_clipnorm": 0.01}])
def test_clipping_limits_each_sgd_step(kwargs):
    # one SGD step of lr 1 moves the weights by exactly the clipped gradient
    x, y = _blobs(16)
    fastnn.set_random_seed(1)
    model = Sequential([Dense(3, activation="tanh", input_dim=4), Dense(2)], dtype="float64")
    model.compile(optimizer=SGD(1.0, **kwargs),
                  loss=SparseCategoricalCrossentropy(from_logits=True))
    model.build(4)
    before = [w.astype(np.float64) for w in model.get_weights()]
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    steps = [b - a.astype(np.float64) for a, b in zip(model.get_weights(), before, strict=True)]
    tol = 1e-6
    if "clipnorm" in kwargs:                  # each variable: kernel and bias separately
        for s in steps:
            assert np.linalg.norm(s) <= 0.01 * (1 + tol)
        assert max(np.linalg.norm(s) for s in steps) > 0.01 * (1 - tol)
    elif "global_clipnorm" in kwargs:
        total = math.sqrt(sum(float(np.sum(s * s)) for s in steps))
        assert total == pytest.approx(0.01, rel=1e-5)
    else:
        assert max(float(np.abs(s).max()) for s in steps) == pytest.approx(0.001, rel=1e-5)


def test_adamw_decays_kernels_and_biases():
    # Keras decays every trainable variable unless exclude_from_weight_decay is called.
    # x = 0 and y = bias make every gradient 0, so only the decay acts: w *= 1 - wd lr.
    x, y = np.zeros((8, 2)), np.full((8, 1), 2.0)
    model = Sequential([Dense(1, input_dim=2)], dtype="float64")
    model.compile(optimizer=AdamW(0.5, weight_decay=0.25), loss="mse")
    model.set_weights([np.ones((2, 1)), np.array([2.0])])
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    kernel, bias = model.get_weights()
    np.testing.assert_array_equal(kernel, np.full((2, 1), 1 - 0.25 * 0.5))
    np.testing.assert_allclose(bias, [2.0 * (1 - 0.25 * 0.5)], rtol=1e-15)


# ----------------------------------------------------------------------------- schedules

def test_schedule_formulas_by_hand():
    e = schedules.ExponentialDecay(0.5, 4, 0.1)
    assert e(0) == 0.5 and e(4) == pytest.approx(0.05) and e(2) == pytest.approx(0.5 * 0.1 ** 0.5)
    es = schedules.ExponentialDecay(0.5, 4, 0.1, staircase=True)
    assert es(3) == 0.5 and es(4) == pytest.approx(0.05) and es(7) == pytest.approx(0.05)
    t = schedules.InverseTimeDecay(0.5, 2, 1.0)
    assert t(0) == 0.5 and t(2) == pytest.approx(0.25) and t(1) == pytest.approx(0.5 / 1.5)
    ts = schedules.InverseTimeDecay(0.5, 2, 1.0, staircase=True)
    assert ts(1) == 0.5 and ts(3) == pytest.approx(0.25)
    p = schedules.PiecewiseConstantDecay([2, 5], [1.0, 0.5, 0.1])
    assert [p(s) for s in range(8)] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.1, 0.1]


def test_schedule_step_is_iterations_before_the_update():
    # Keras calls learning_rate(optimizer.iterations) before incrementing: steps 0, 1, ...
    seen = []

    class Spy(schedules.LearningRateSchedule):
        def __call__(self, step):
            seen.append(step)
            return 0.01

        def get_config(self):
            return {}

    model = _fit(SGD(Spy()), epochs=2)           # 48 rows / 16 = 3 steps per epoch
    assert seen == list(range(6))
    assert model.optimizer.iterations == 6


def test_schedules_reject_bad_steps():
    for schedule in (schedules.ExponentialDecay(0.1, 2, 0.5),
                     schedules.PiecewiseConstantDecay([1], [0.1, 0.2])):
        with pytest.raises(ValueError, match="step"):
            schedule(-1)
        with pytest.raises(TypeError, match="step"):
            schedule("3")


def test_schedule_deserialize_rejects_unknown_classes():
    with pytest.raises(ValueError, match="unknown learning-rate schedule"):
        schedules.deserialize({"class_name": "os.system", "config": {}})
    with pytest.raises(ValueError, match="not a serialized"):
        schedules.deserialize("ExponentialDecay")
    with pytest.raises(TypeError):
        schedules.deserialize({"class_name": "ExponentialDecay", "config": {"evil": 1}})
    with pytest.raises(ValueError, match="not an optimizer config"):
        optimizers.from_config({"name": "os.system"})


def test_custom_schedule_subclass_cannot_be_saved(tmp_path):
    class Mine(schedules.LearningRateSchedule):
        def __call__(self, step):
            return 0.1

        def get_config(self):
            return {}

    model = Sequential([Dense(1, input_dim=2)])
    model.compile(optimizer=SGD(Mine()), loss="mse")
    with pytest.raises(ValueError, match="built-in schedules"):
        model.save(tmp_path / "m")


def test_saved_schedule_continues_where_it_stopped(tmp_path):
    x, y = _blobs()
    opt = SGD(schedules.PiecewiseConstantDecay([2], [0.5, 0.0]))
    model = _fit(opt, epochs=1)                  # steps 0, 1, 2: the last one at lr 0.0
    model.save(tmp_path / "m")
    loaded = fastnn.load_model(tmp_path / "m")
    before = loaded.get_weights()
    loaded.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)   # lr 0 from step 3
    for a, b in zip(before, loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("schedule", [
    schedules.ExponentialDecay(0.1, 7, 0.3), schedules.ExponentialDecay(0.1, 7, 0.3, True),
    schedules.InverseTimeDecay(0.2, 3, 0.7), schedules.InverseTimeDecay(0.2, 3, 0.7, True),
    schedules.PiecewiseConstantDecay([3, 9.5, 20], [0.4, 0.3, 0.2, 0.1]),
], ids=["exp", "exp-stair", "inv", "inv-stair", "piecewise"])
def test_whole_epoch_rates_equal_per_step_calls(schedule):
    rates = SGD(schedule)._learning_rates(5, 40)
    assert rates.tolist() == [schedule(step) for step in range(5, 45)]


def test_bad_scheduled_rates_raise_before_training():
    class Negative(schedules.LearningRateSchedule):
        def __call__(self, step):
            return -0.1 if step == 2 else 0.1

        def get_config(self):
            return {}

    x, y = _blobs()
    model = Sequential([Dense(2, input_dim=4)])
    model.compile(optimizer=SGD(Negative()), loss=SparseCategoricalCrossentropy(from_logits=True))
    model.build(4)
    before = model.get_weights()
    with pytest.raises(ValueError, match="learning_rate"):
        model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
