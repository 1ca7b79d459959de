import jax.numpy as jnp
import numpy as np
import pytest

import odefit


def test_relative_l2_and_max_abs():
    ref = jnp.array([[3.0, 0.0], [0.0, 4.0]])
    pred = ref + jnp.array([[0.0, 0.5], [0.0, 0.0]])
    np.testing.assert_allclose(odefit.relative_l2(pred, ref), 0.5 / 5.0)
    np.testing.assert_allclose(odefit.max_abs_error(pred, ref), 0.5)
    assert float(odefit.relative_l2(ref, ref)) == 0.0


def test_shape_mismatch():
    with pytest.raises(
        ValueError, match=r"`pred` has shape \(3,\) but `ref` has shape"
    ):
        odefit.relative_l2(jnp.ones(3), jnp.ones((3, 1)))
