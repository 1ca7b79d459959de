r"""Causal weighting of the physics residual in time.

A network trained on the residual over a whole long interval can lower the loss
at late times with a function that is wrong at early times, and then never
recover: the solution at $t$ is only determined once the solution before $t$ is
right. Causal weighting multiplies the residual at each time by a weight that
stays small until the residual at all earlier times is small.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float

from ._collocation import AbstractCollocation
from ._residuals import Residuals
from ._trainers import AbstractTrainer, as_trainer
from ._validate import check_float, check_int


def causal_weights(
    ts: Float[Array, " n"],
    point_losses: Float[Array, " n"],
    epsilon: float,
    chunks: int,
) -> Float[Array, " n"]:
    r"""The causal weight of every point.

    The points are split by time into `chunks` groups of (nearly) equal count; with
    $L_k$ the mean loss of group $k$, every point of group $k$ gets weight
    $w_k = \exp(-\epsilon \sum_{j<k} L_j)$. The weights carry no gradient.
    """
    n = ts.shape[0]
    chunks = min(chunks, n)
    rank = jnp.argsort(jnp.argsort(ts))
    group = (rank * chunks) // n
    sums = jax.ops.segment_sum(point_losses, group, num_segments=chunks)
    counts = jax.ops.segment_sum(jnp.ones_like(point_losses), group, chunks)
    means = sums / jnp.maximum(counts, 1)
    before = jnp.cumsum(means) - means
    weights = jnp.exp(-jnp.asarray(epsilon, means.dtype) * before)
    return jax.lax.stop_gradient(weights[group])


class CausalWeighting(AbstractTrainer):
    r"""Wraps an optimiser so that it trains on the causally weighted residual.

    At every step the physics residual at the collocation points is split by time
    into `chunks` consecutive groups; with $L_k$ the mean squared residual of
    group $k$ at the current parameters, the squared residual of each point in
    group $k$ is multiplied by

    $$w_k = \exp\Big(-\epsilon \sum_{j<k} L_j\Big),$$

    held fixed (no gradient) during the step. Late times only count once the
    residual before them is small, so the fit proceeds forward in time, as the
    solution itself does. The inner optimiser — any optax transformation or
    odefit trainer, Levenberg–Marquardt included — sees the weighted residuals.

    History: `"loss"` and the per-term entries are the unweighted losses (comparable
    with an unweighted fit); `"weighted_loss"` is the loss the optimiser saw and
    `"causal_weight"` the smallest weight, which approaches 1 once the residual is
    small everywhere (the paper's signal to raise $\epsilon$: run stages with
    growing $\epsilon$ through [`odefit.fit_stages`][]).

    **Arguments:**

    - `optimizer`: an `optax.GradientTransformation` or odefit trainer.
    - `epsilon`: the causality parameter $\epsilon$ (larger: stricter).
    - `chunks`: the number of time groups.

    **Example:**

    ```python
    import jax, jax.numpy as jnp, optax, odefit

    def lotka_volterra(t, y, args):
        return jnp.stack([1.5 * y[0] - y[0] * y[1], -3.0 * y[1] + y[0] * y[1]])

    problem = odefit.IVP(lotka_volterra, t0=0.0, t1=10.0, y0=jnp.array([1.0, 1.0]))
    model = odefit.PINN(problem, width=32, depth=3, key=jax.random.key(0))
    result = odefit.fit(
        problem, model, steps=100,
        optimizer=odefit.CausalWeighting(optax.adam(1e-3), epsilon=1.0),
        key=jax.random.key(1), progress=False,
    )
    ```

    **Reference:** Wang, Sankaran & Perdikaris, "Respecting causality is all you
    need for training physics-informed neural networks" (2022),
    https://arxiv.org/abs/2203.07404

    **Commercial use:** this is odefit's own implementation, written from the
    published method. The method's authors state, in the README of their code
    (github.com/PredictiveIntelligenceLab/CausalPINNs), that "the proposed causal
    training algorithm cannot be used for commercial purposes (protected by a
    patent at the University of Pennsylvania)". If your use is commercial, check
    that statement before relying on causal weighting.
    """

    trainer: AbstractTrainer
    epsilon: float = eqx.field(static=True)
    chunks: int = eqx.field(static=True)

    def __init__(
        self,
        optimizer: optax.GradientTransformation | AbstractTrainer,
        *,
        epsilon: float = 1.0,
        chunks: int = 32,
    ):
        if isinstance(optimizer, CausalWeighting):
            raise TypeError("`optimizer` is already causally weighted; do not nest.")
        if not isinstance(optimizer, (optax.GradientTransformation, AbstractTrainer)):
            raise TypeError(
                "`optimizer` must be an optax.GradientTransformation or an odefit "
                f"trainer, got {type(optimizer).__name__}."
            )
        self.trainer = as_trainer(optimizer, 1)
        self.epsilon = check_float(epsilon, "epsilon", 0.0)
        self.chunks = check_int(chunks, "chunks", 1)

    def _weighted(self, residuals_fn, params):
        if not isinstance(residuals_fn, Residuals):
            raise TypeError(
                "CausalWeighting needs the collocation times of the residual: use it "
                "through odefit.fit (got a plain residual function)."
            )
        terms = residuals_fn(params)
        n = residuals_fn.ts.shape[0]
        names = [k for k in terms if k in residuals_fn.pointwise]
        if not names:
            return terms, residuals_fn, jnp.ones((), residuals_fn.ts.dtype)
        # Each point's share of the term, rescaled to the term's mean units.
        point_losses = sum(
            jnp.sum(terms[k].reshape(n, -1) ** 2, axis=1) for k in names
        ) * jnp.asarray(n, residuals_fn.ts.dtype)
        weights = causal_weights(
            residuals_fn.ts, point_losses, self.epsilon, self.chunks
        )
        return terms, residuals_fn.reweight(weights), jnp.min(weights)

    def init(self, residuals_fn, params):
        return self.trainer.init(residuals_fn, params)

    def step(self, residuals_fn, params, state):
        terms, weighted, smallest = self._weighted(residuals_fn, params)
        params, state, stats = self.trainer.step(weighted, params, state)
        losses = {name: jnp.sum(r**2) for name, r in terms.items()}
        stats = {
            **stats,
            "loss": sum(losses.values()),
            **losses,
            "weighted_loss": stats["loss"],
            "causal_weight": smallest,
        }
        return params, state, stats

    def default_collocation(self, steps: int) -> AbstractCollocation:
        return self.trainer.default_collocation(steps)
