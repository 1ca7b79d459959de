r"""Loss terms as a named PyTree of weighted residual vectors.

Every term is returned as a vector $r_k$ already weighted so that its loss is
$\lVert r_k \rVert^2 = w_k \operatorname{mean}(\text{raw}_k^2)$ and the total loss is
$\sum_k \lVert r_k \rVert^2$. First-order optimisers differentiate that sum;
least-squares trainers (Gauss–Newton, Levenberg–Marquardt) work on the stacked
vectors directly. One definition serves both.
"""

from collections.abc import Mapping

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._custom_types import Args
from ._derivatives import derivatives
from ._models.base import AbstractModel
from ._models.pinn import PINN
from ._observations import Observations
from ._problems import AbstractProblem

TERMS = ("residual", "conditions", "data")


def check_weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    out = dict.fromkeys(TERMS, 1.0)
    if weights is None:
        return out
    if not isinstance(weights, Mapping):
        raise TypeError(
            f"`weights` must be a mapping such as {{'residual': 1.0, 'data': 10.0}}, "
            f"got {type(weights).__name__}."
        )
    for name, value in weights.items():
        if name not in out:
            raise ValueError(
                f"`weights` has an unknown term {name!r}; the terms are {TERMS}."
            )
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not (value >= 0 and value < float("inf"))
        ):
            raise ValueError(
                f"`weights[{name!r}]` must be a finite number >= 0, got {value!r}."
            )
        out[name] = float(value)
    return out


def predict(model: AbstractModel, ts: Float[Array, " n"]) -> Array:
    """The model's trajectory at `ts`: one call, so that a neural ODE integrates once
    through every observation time instead of once per time."""
    return model.predict(ts)


def physics_residual(
    model: PINN, problem: AbstractProblem, args: Args, t
) -> Float[Array, "*state"]:
    """The ODE residual of `model` at one time, in the model's units: divided by
    `scale / (t1 - t0)**order` so every component is O(1) when the fit is good."""
    derivs = derivatives(model, t, problem.order)
    units = model.scale / (problem.t1 - problem.t0) ** problem.order
    return problem.residual(t, derivs, args) / units


def _weighted(raw: Array, weight: float) -> Array:
    raw = jnp.ravel(raw)
    return raw * jnp.sqrt(weight / raw.size).astype(raw.dtype)


def loss_terms(
    model: AbstractModel,
    problem: AbstractProblem,
    args: Args,
    ts: Float[Array, " n"],
    observations: Observations | None,
    weights: Mapping[str, float],
) -> dict[str, Float[Array, " _"]]:
    """The weighted residual vectors of every active term, keyed by name. A term
    whose weight is zero is not computed (a supervised fit with
    `weights={"residual": 0}` costs no derivatives)."""
    terms = {}
    if isinstance(model, PINN) and weights["residual"] > 0:
        raw = jax.vmap(lambda t: physics_residual(model, problem, args, t))(ts)
        terms["residual"] = _weighted(raw, weights["residual"])
        if model.condition is None:
            units = jnp.tile(jnp.ravel(model.scale), problem.order)
            raw = problem.condition_residuals(model) / units
            terms["conditions"] = _weighted(raw, weights["conditions"])
    if observations is not None:
        pred = predict(model, observations.ts)
        if observations.observe is not None:
            pred = jax.vmap(observations.observe)(pred)
        terms["data"] = _weighted(
            pred - observations.ys, observations.weight * weights["data"]
        )
    if not terms:
        raise ValueError(
            "Nothing to fit: every loss term is switched off or absent (got "
            f"`weights`={dict(weights)} and "
            f"{'no' if observations is None else 'some'} `observations`)."
        )
    return terms
