"""Error metrics between a prediction and a reference."""

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float


def _check(pred, ref):
    pred, ref = jnp.asarray(pred), jnp.asarray(ref)
    if pred.shape != ref.shape:
        raise ValueError(
            f"`pred` has shape {pred.shape} but `ref` has shape {ref.shape}; "
            "they must match."
        )
    return pred, ref


def relative_l2(
    pred: Float[ArrayLike, "..."], ref: Float[ArrayLike, "..."]
) -> Float[Array, ""]:
    r"""The relative $L^2$ error $\lVert \hat y - y \rVert_2 / \lVert y \rVert_2$ over
    every entry (all times and all components together).

    **Example:** `odefit.relative_l2(jax.vmap(model)(ts), problem.solve(ts))`
    """
    pred, ref = _check(pred, ref)
    return jnp.linalg.norm((pred - ref).ravel()) / jnp.linalg.norm(ref.ravel())


def max_abs_error(
    pred: Float[ArrayLike, "..."], ref: Float[ArrayLike, "..."]
) -> Float[Array, ""]:
    r"""The largest pointwise error $\max |\hat y - y|$."""
    pred, ref = _check(pred, ref)
    return jnp.max(jnp.abs(pred - ref))
