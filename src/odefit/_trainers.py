"""The optimiser interface of `fit`: optax transformations and odefit's own
least-squares trainers behind one `init`/`step` pair."""

import abc
import functools
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import optax
from jaxtyping import Array, PyTree

from ._collocation import AbstractCollocation, Grid, Uniform
from ._losses import total_loss
from ._residuals import Residuals
from ._validate import INT32_MAX

ResidualsFn = Callable[[PyTree], dict[str, Array]]


class AbstractTrainer(eqx.Module):
    """Advances the trainable parameters by one step.

    `residuals_fn(params)` returns the weighted residual vectors of every loss term
    (their squared norms sum to the loss); a trainer may use the gradient of the
    loss (first-order methods) or the Jacobian of the residuals (least squares).
    """

    @abc.abstractmethod
    def init(self, residuals_fn: ResidualsFn, params: PyTree) -> Any:
        """The trainer's initial state."""

    @abc.abstractmethod
    def step(
        self, residuals_fn: ResidualsFn, params: PyTree, state: Any
    ) -> tuple[PyTree, Any, dict[str, Array]]:
        """One step: new parameters, new state, and statistics (at least `loss` and
        each term's loss, evaluated at the incoming parameters)."""

    @abc.abstractmethod
    def default_collocation(self, steps: int) -> AbstractCollocation:
        """The collocation used when `fit` is given none, for a run of `steps`."""


class AbstractGridTrainer(AbstractTrainer):
    """A trainer that needs the same objective from step to step (a least-squares
    step solves the linearised problem exactly; a quasi-Newton method learns the
    curvature from successive gradients): its default collocation is fixed,
    `Grid(points)`."""

    points: eqx.AbstractVar[int]

    def default_collocation(self, steps: int) -> AbstractCollocation:
        return Grid(self.points)


# Points per part when a first-order step computes the loss and its gradient part
# by part (see `OptaxTrainer`), which pays on a CPU from about 8k points
# (benchmarks/parts.py; below that it measured no faster or slower).
PART = 2048


def _value_and_grad(residuals_fn, params):
    def loss_fn(p):
        return total_loss(residuals_fn(p))

    return eqx.filter_value_and_grad(loss_fn, has_aux=True)(params)


def _value_and_grad_by_parts(residuals: Residuals, params, part: int):
    """`_value_and_grad` of separable residuals, summed over parts of `part`
    points (one `lax.scan`; the last `n % part` points as one more part), each
    weighted by its share of the points: the same value and gradient, up to
    rounding."""
    n = residuals.ts.shape[0]
    whole = n // part

    def split(x, stop):
        return None if x is None else x[:stop].reshape(whole, part, *x.shape[1:])

    def one(ts, weights):
        return _value_and_grad(residuals.at(ts, weights), params)

    def body(total, xs):
        out = one(*xs)
        return jtu.tree_map(jnp.add, total, out), None

    weights = residuals.point_weights
    xs = (split(residuals.ts, whole * part), split(weights, whole * part))
    shapes = jax.eval_shape(one, xs[0][0], None if weights is None else xs[1][0])
    zero = jtu.tree_map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)
    total, _ = jax.lax.scan(body, zero, xs)
    total = jtu.tree_map(lambda x: x * (part / n), total)
    if whole * part < n:
        tail = one(
            residuals.ts[whole * part :],
            None if weights is None else weights[whole * part :],
        )
        share = (n - whole * part) / n
        total = jtu.tree_map(lambda a, b: a + b * share, total, tail)
    return total


class OptaxTrainer(AbstractTrainer):
    """Runs any `optax.GradientTransformation` on the loss. L-BFGS and other
    transformations that need the value and a `value_fn` receive them.

    On more than `2 * part` points with separable residuals (odefit's own loss
    terms; see `Residuals.separable`), the loss and gradient are summed
    over parts of `part` points: the same numbers up to rounding, faster on a CPU
    at many thousands of points because each part's intermediates stay closer to
    the cores (benchmarks/parts.py). `part=None` computes them on all points at
    once."""

    optimizer: optax.GradientTransformationExtraArgs
    part: int | None = eqx.field(static=True)

    def __init__(
        self, optimizer: optax.GradientTransformation, part: int | None = PART
    ):
        self.optimizer = optax.with_extra_args_support(optimizer)
        self.part = part

    def init(self, residuals_fn, params):
        with jax.numpy_dtype_promotion("standard"):
            return self.optimizer.init(params)

    def step(self, residuals_fn, params, state):
        def loss_fn(p):
            return total_loss(residuals_fn(p))

        if (
            self.part is not None
            and isinstance(residuals_fn, Residuals)
            and residuals_fn.separable
            and residuals_fn.ts.shape[0] > 2 * self.part
        ):
            (loss, losses), grads = _value_and_grad_by_parts(
                residuals_fn, params, self.part
            )
        else:
            (loss, losses), grads = _value_and_grad(residuals_fn, params)
        # optax mixes Python scalars and integer step counts; odefit's own code is
        # clean under strict dtype promotion, so only this call is relaxed.
        with jax.numpy_dtype_promotion("standard"):
            updates, state = self.optimizer.update(
                grads,
                state,
                params,
                value=loss,
                grad=grads,
                value_fn=lambda p: loss_fn(p)[0],
            )
        params = eqx.apply_updates(params, updates)
        return params, state, {"loss": loss, **losses}

    def default_collocation(self, steps):
        # Within the int32 range Uniform counts its steps in.
        return Uniform(256, warmup=min(steps // 2, INT32_MAX))


# Cached: optax transformations are closures, and a new one per `fit` call would
# make every call recompile the training loop.
@functools.lru_cache(maxsize=64)
def default_optimizer(steps: int) -> optax.GradientTransformation:
    """Adam whose learning rate decays from 3e-3 to 3e-5 over the run."""
    schedule = optax.exponential_decay(
        3e-3, transition_steps=max(steps, 1), decay_rate=1e-2
    )
    return optax.adam(schedule)


def as_trainer(optimizer, steps: int) -> AbstractTrainer:
    if optimizer is None:
        return OptaxTrainer(default_optimizer(steps))
    if isinstance(optimizer, AbstractTrainer):
        return optimizer
    if isinstance(optimizer, optax.GradientTransformation):
        return OptaxTrainer(optimizer)
    raise TypeError(
        "`optimizer` must be an optax.GradientTransformation (e.g. optax.adam(1e-3))"
        " or an odefit trainer (e.g. odefit.LevenbergMarquardt()), got "
        f"{type(optimizer).__name__}."
    )
