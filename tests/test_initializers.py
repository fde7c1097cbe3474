"""Initialisers: Keras 3's seeded form (same values every call, shared stream untouched)."""
import numpy as np
import pytest

import fastnn
from fastnn import _random, initializers
from fastnn.layers import Dense

RANDOM = [initializers.GlorotUniform, initializers.GlorotNormal, initializers.HeNormal,
          initializers.HeUniform]


@pytest.mark.parametrize("cls", RANDOM)
def test_seeded_initializer_repeats_and_leaves_the_stream_alone(cls):
    fastnn.set_random_seed(3)
    expected_next = _random.generator().random()
    fastnn.set_random_seed(3)
    init = cls(seed=7)
    a, b = init((5, 4), np.float32), init((5, 4), np.float32)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, cls(seed=8)((5, 4), np.float32))
    assert _random.generator().random() == expected_next


@pytest.mark.parametrize("cls", RANDOM)
def test_unseeded_initializer_draws_from_the_stream(cls):
    init = cls()
    fastnn.set_random_seed(1)
    a = init((3, 3), np.float64)
    b = init((3, 3), np.float64)
    fastnn.set_random_seed(1)
    np.testing.assert_array_equal(a, init((3, 3), np.float64))
    assert not np.array_equal(a, b)


def test_seeded_dense_config_round_trips():
    layer = Dense(4, kernel_initializer=initializers.HeNormal(seed=5), input_shape=(3,))
    config = layer.get_config()
    assert config["kernel_initializer"] == {"name": "he_normal", "seed": 5}
    assert config["bias_initializer"] == "zeros"
    clone = Dense.from_config(config)
    assert clone.kernel_initializer.seed == 5


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_bad_seed_raises(bad):
    with pytest.raises(TypeError, match="seed"):
        initializers.GlorotUniform(seed=bad)


def test_unknown_initializer_config_raises():
    with pytest.raises(ValueError, match="kernel_initializer"):
        Dense(2, kernel_initializer={"name": "orthogonal"})
    with pytest.raises(ValueError, match="kernel_initializer"):
        Dense(2, kernel_initializer={"name": "he_normal", "mode": "fan_out"})
