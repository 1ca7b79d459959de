import jax
import jax.random as jr
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def getkey():
    """A function returning a fresh key on each call, from a fixed seed."""
    keys = iter(jr.split(jr.key(5678), 10_000))
    return lambda: next(keys)
