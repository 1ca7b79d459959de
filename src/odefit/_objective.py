"""What a fit minimises, as a function of its trainable parameters: the one place
that turns a model, a problem and the loss options into the residual function a
trainer sees, and that builds a trainer's initial state from it."""

from collections.abc import Mapping
from typing import Any

import equinox as eqx
from jaxtyping import Array, Float, PyTree

from ._collocation import AbstractCollocation
from ._custom_types import Key
from ._family_fit import family_loss_terms, family_points, family_residual_norms
from ._losses import (
    Term,
    check_terms,
    check_weights,
    loss_terms,
    point_residual_norms,
)
from ._models.base import AbstractModel
from ._observations import Observations
from ._problems import AbstractProblem
from ._residuals import Residuals
from ._trainers import AbstractTrainer
from ._unknown import args_mask, resolve_args


def split(model: AbstractModel, args) -> tuple[PyTree, PyTree]:
    """`(model, args)` split into the trained parameters (the model's trainable
    leaves and the raw values of `Unknown`s) and the rest."""
    return eqx.partition((model, args), (model.trainable(), args_mask(args)))


class Objective(eqx.Module):
    """The loss of one fit as a function of its parameters (see `split`)."""

    problem: AbstractProblem
    static: PyTree
    observations: Observations | None
    weights: dict[str, float]
    terms: dict[str, Term]

    def model_and_args(self, params: PyTree) -> tuple[AbstractModel, PyTree]:
        """The model and the `args` values (Unknowns resolved) at `params`."""
        model, args = eqx.combine(params, self.static)
        return model, resolve_args(args)

    def __call__(self, params: PyTree, ts: Float[Array, " n"]) -> dict[str, Array]:
        """The weighted residual vectors at collocation points `ts` (for a family
        of ODEs, rows `(t_i, p_i)`)."""
        if self.problem.family is not None:
            model, args = eqx.combine(params, self.static)
            return family_loss_terms(model, self.problem, ts, args, self.weights)
        model, args = self.model_and_args(params)
        return loss_terms(
            model,
            self.problem,
            ts,
            args=args,
            observations=self.observations,
            weights=self.weights,
            terms=self.terms,
        )

    def residual_norms(self, params: PyTree):
        """`ts -> |R(t_i)|`, the residual size at each point (for collocations that
        place points where the residual is large)."""
        if self.problem.family is not None:
            model, args = eqx.combine(params, self.static)
            return family_residual_norms(model, self.problem, args)
        model, args = self.model_and_args(params)
        return lambda ts: point_residual_norms(model, self.problem, args, ts)

    def sample(self, collocation, state, params, *, key: Key):
        ts, state = collocation.sample(
            state,
            self.problem.t0,
            self.problem.t1,
            self.residual_norms(params),
            key=key,
        )
        return self._with_members(collocation, ts, key), state

    def _with_members(self, collocation, ts, key):
        """For a family, this step's times paired with members of its box."""
        family = self.problem.family
        if family is None:
            return ts
        return family_points(family, collocation.redraws(), ts, key=key)

    def residuals(self, ts: Float[Array, " n"]) -> Residuals:
        # odefit's own terms are pointwise or independent of `ts`; a user's term
        # may use `ts` in any way, so the loss is then not split along the points.
        return Residuals(self, ts, separable=not self.terms)

    def init(
        self,
        trainer: AbstractTrainer,
        collocation: AbstractCollocation,
        params: PyTree,
        *,
        key: Key,
    ) -> Any:
        """The trainer's initial state, built on the collocation's first points."""
        problem = self.problem
        state = collocation.init(problem.t0, problem.t1, problem.state.dtype)
        ts, _ = collocation.sample(state, problem.t0, problem.t1, lambda t: t, key=key)
        ts = self._with_members(collocation, ts, key)
        return trainer.init(self.residuals(ts), params)


def make_objective(
    problem: AbstractProblem,
    static: PyTree,
    observations: Observations | None = None,
    weights: Mapping[str, float] | None = None,
    terms: Mapping[str, Term] | None = None,
) -> Objective:
    terms = check_terms(terms)
    return Objective(
        problem, static, observations, check_weights(weights, terms), terms
    )
