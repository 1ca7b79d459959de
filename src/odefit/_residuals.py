r"""The residual function `fit` hands to its trainers, with the structure that makes
least-squares Jacobians cheap.

A PINN's physics residual is a mean over collocation points: the row block of
point $t_i$ depends on the parameters only through the network at $t_i$. Its
Jacobian is therefore best computed one point at a time (`vmap` over points of a
reverse-mode Jacobian with as many rows as the state has components), which costs
a few network evaluations per point. Differentiating the stacked vector as a black
box instead (`jax.jacrev` of the whole batch) repeats the whole batch once per
row: on a 512-point grid that is a hundred times slower.
"""

from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree


class Residuals(eqx.Module):
    r"""The weighted residual vectors of a fit as a function of the parameters.

    Calling it, `residuals(params)`, gives the dictionary of weighted residual
    vectors whose squared norms sum to the loss (the contract of
    [`odefit.AbstractTrainer`][]). It also exposes the structure of that function,
    for trainers that use the Jacobian:

    - terms named in `pointwise` stack one block per collocation point, and
        `fn(params, ts)[name]` equals the concatenation over $i$ of
        `fn(params, ts[i:i+1])[name] / sqrt(len(ts))` (a mean over points);
    - every other term does not depend on `ts`.

    `point_weights` (optional, one per point) multiply the squared residual of
    each point in the pointwise terms, as causal weighting does.

    With `separable=True` the caller also promises that *every* term is either
    pointwise or independent of `ts` (true of odefit's own terms, not of a user's
    term that may use `ts` freely): the loss on all points then equals the mean of
    the losses on any split of the points into parts, weighted by their sizes, so
    a first-order trainer may compute it part by part (see `at`), which keeps each
    part's intermediate arrays in the CPU's caches when there are many points.

    **Arguments:**

    - `fn`: `fn(params, ts) -> dict[str, Array]`, the weighted residual vectors at
        collocation points `ts`.
    - `ts`: this step's collocation points.
    - `pointwise`: the names of the terms that are means over `ts`.
    - `point_weights`: `None` or non-negative weights of shape `ts.shape`.
    - `separable`: whether the loss may be computed part by part, as above.
    """

    fn: Callable[[PyTree, Float[Array, " n"]], dict[str, Array]]
    ts: Float[Array, " n"]
    pointwise: tuple[str, ...] = eqx.field(static=True, default=("residual",))
    point_weights: Float[Array, " n"] | None = None
    separable: bool = eqx.field(static=True, default=False)

    def __call__(self, params: PyTree) -> dict[str, Array]:
        terms = self.fn(params, self.ts)
        if self.point_weights is None:
            return terms
        root = jnp.sqrt(self.point_weights)
        n = self.ts.shape[0]
        return {
            name: (r.reshape(n, -1) * root[:, None]).ravel()
            if name in self.pointwise
            else r
            for name, r in terms.items()
        }

    def reweight(self, point_weights: Float[Array, " n"]) -> "Residuals":
        """The same residuals with each point's squared residual multiplied by
        `point_weights` (on top of any weights already present)."""
        if self.point_weights is not None:
            point_weights = point_weights * self.point_weights
        return Residuals(
            self.fn, self.ts, self.pointwise, point_weights, self.separable
        )

    def at(
        self, ts: Float[Array, " m"], point_weights: Float[Array, " m"] | None
    ) -> "Residuals":
        """The same residuals at other points (e.g. a part of `ts`, with its
        part of `point_weights`)."""
        return Residuals(self.fn, ts, self.pointwise, point_weights, self.separable)
