r"""Fitting a family of ODEs: what `fit` does differently when the problem has
[`odefit.Varies`][] entries.

A family's collocation points are pairs $(t_i, p_i)$ of a time and a member,
stored as the rows of an array of shape `(n, 1 + size)` (the time first), so that
every trainer — the least-squares ones included, which take the Jacobian one
point at a time — sees the same structure as for a single ODE. The times come
from the collocation; the members are drawn with them: uniformly in the box at
every step when the collocation redraws its points ([`odefit.Uniform`][]), or a
fixed Halton set when it keeps them ([`odefit.Grid`][]), so that a least-squares
trainer minimises one fixed objective. The residual at each row is that of its
own member: the model at $(t_i, p_i)$, the vector field with the member's
`args`.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float

from ._custom_types import Key
from ._family import Family, halton
from ._losses import _weighted, physics_residual
from ._unknown import resolve_args


class _Member(eqx.Module):
    """One member of a family model, as a function of `t` alone (what
    `physics_residual` differentiates)."""

    model: eqx.Module
    params: Float[Array, " family"]

    def __call__(self, t):
        return self.model(t, self.params)

    def residual_scale(self):
        return self.model.residual_scale()


def family_points(
    family: Family, redraws: bool, ts: Float[Array, " n"], *, key: Key
) -> Float[Array, "n 1+family"]:
    """The rows `(t_i, p_i)`: this step's times paired with members of the box."""
    n = ts.shape[0]
    low, high = family.low.astype(ts.dtype), family.high.astype(ts.dtype)
    if redraws:
        u = jr.uniform(jr.fold_in(key, 1), (n, family.size), ts.dtype)
    else:
        u = jnp.asarray(halton(n, family.size), ts.dtype)
    return jnp.concatenate([ts[:, None], low + u * (high - low)], axis=1)


def family_residual(model, problem, args, t, params):
    """The physics residual of member `params` at `t` (`args` unresolved, with
    their `Varies` markers)."""
    member_args = resolve_args(problem.family.args(args, params))
    return physics_residual(_Member(model, params), problem, t, args=member_args)


def family_loss_terms(
    model, problem, points: Float[Array, "n 1+family"], args, weights
) -> dict[str, Array]:
    """The weighted residual vector of a family at its rows `(t_i, p_i)`."""
    raw = jax.vmap(lambda row: family_residual(model, problem, args, row[0], row[1:]))(
        points
    )
    return {"residual": _weighted(raw, weights["residual"])}


def family_residual_norms(model, problem, args):
    """`ts -> |R(t_i)|` at the box centre (for collocations that adapt to the
    residual, which place times only)."""
    centre = problem.family.centre

    def norms(ts):
        r = jax.vmap(lambda t: family_residual(model, problem, args, t, centre))(ts)
        return jnp.sqrt(jnp.sum(r.reshape(ts.shape[0], -1) ** 2, axis=1))

    return norms


def check_family_fit(problem, model, observations, terms) -> None:
    """What a fit of a family needs, or a clear error."""
    family = problem.family
    if family is None:
        return
    names = family.names
    if model.residual_scale() is None or not model.conditions_built_in():
        raise ValueError(
            f"A family of ODEs (the problem's `odefit.Varies` {names}) is fit by "
            "the physics residual with its conditions built in, for every member: "
            f"use an odefit.PINN of the problem, not a {type(model).__name__} "
            "without built-in conditions."
        )
    if observations is not None:
        raise ValueError(
            f"`observations` cannot be fit for a family of ODEs ({names}): data "
            "belong to one member. Fit the member, `problem.member(params)`."
        )
    if terms:
        raise ValueError(
            f"`terms` are not supported for a family of ODEs ({names}), got "
            f"{sorted(terms)}."
        )
