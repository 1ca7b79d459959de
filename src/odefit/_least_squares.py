r"""Gauss–Newton and Levenberg–Marquardt trainers.

The PINN loss is a sum of squares, $L(\theta) = \lVert r(\theta) \rVert^2$, with
$r$ every loss term's weighted residual vector stacked. Linearising $r$ around the
current parameters, $r(\theta + \delta) \approx r + J\delta$, turns each step into
a linear least-squares problem

$$\min_\delta \lVert r + J \delta \rVert^2 + \lambda \lVert \delta \rVert^2,$$

solved exactly, in whichever of its two equivalent forms is smaller:

$$\delta = -(J^\top J + \lambda I)^{-1} J^\top r
        = -J^\top (J J^\top + \lambda I)^{-1} r.$$

With $P$ parameters and $M$ residuals the first is a $P \times P$ system, the
second $M \times M$. Near a solution the step converges quadratically where
first-order methods crawl, which is why these trainers reach errors Adam does not.
"""

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, PyTree

from ._collocation import _check_count, _check_points
from ._residuals import Residuals
from ._trainers import AbstractGridTrainer
from ._validate import check_bool, check_float


def _check_positive(value, name: str) -> float:
    return check_float(value, name, 0.0, open_minimum=True)


def _ravel(params: PyTree) -> tuple[Array, Callable[[Array], PyTree]]:
    # Mixed float dtypes (e.g. a float32 network and float64 unknowns) are joined
    # in the widest one; the unravel casts each leaf back.
    with jax.numpy_dtype_promotion("standard"):
        return ravel_pytree(params)


def _jacobian_by_shape(fn: Callable[[Array], Array], x: Array, rows: int) -> Array:
    """The Jacobian of `fn` at `x`, forward mode when there are no more inputs
    than outputs (one JVP per input), reverse mode otherwise (one VJP per row)."""
    if x.shape[0] <= rows:
        return jax.jacfwd(fn)(x)
    return jax.jacrev(fn)(x)


def _stack(terms: dict[str, Array], dtype) -> Array:
    return jnp.concatenate([jnp.ravel(r).astype(dtype) for r in terms.values()])


def residuals_and_jacobian(
    residuals_fn: Callable[[PyTree], dict[str, Array]], params: PyTree
) -> tuple[dict[str, Array], Float[Array, " m"], Float[Array, "m p"], Callable]:
    """The residual terms at `params`, their stacked vector $r$, its Jacobian $J$
    with respect to the ravelled trainable parameters, and the unravel function.

    For a `Residuals` (what `fit` passes) the pointwise terms are differentiated one
    collocation point at a time; every other term, or any plain function, by the
    cheaper of forward and reverse mode for the Jacobian's shape.
    """
    flat, unravel = _ravel(params)
    dtype = flat.dtype
    terms = residuals_fn(params)
    blocks = {}
    if isinstance(residuals_fn, Residuals):
        ts = residuals_fn.ts
        n = ts.shape[0]
        pointwise = [k for k in terms if k in residuals_fn.pointwise]
        others = [k for k in terms if k not in residuals_fn.pointwise]
        inv_root_n = jnp.asarray(1.0 / math.sqrt(n), dtype)
        for name in pointwise:
            rows_per_point = terms[name].shape[0] // n

            def at_point(f, t, name=name):
                return jnp.ravel(residuals_fn.fn(unravel(f), t[None])[name]).astype(
                    dtype
                )

            per_point = jax.vmap(
                lambda t, at_point=at_point, rows=rows_per_point: _jacobian_by_shape(
                    lambda f: at_point(f, t), flat, rows
                )
            )(ts)
            scale = inv_root_n
            if residuals_fn.point_weights is not None:
                root = jnp.sqrt(residuals_fn.point_weights).astype(dtype)
                per_point = per_point * root[:, None, None]
            blocks[name] = per_point.reshape(-1, flat.shape[0]) * scale
        if others:
            t_any = ts[:1]
            rows = sum(terms[k].size for k in others)

            def rest(f):
                out = residuals_fn.fn(unravel(f), t_any)
                return _stack({k: out[k] for k in others}, dtype)

            jac = _jacobian_by_shape(rest, flat, rows)
            start = 0
            for name in others:
                size = terms[name].size
                blocks[name] = jac[start : start + size]
                start += size
        jac = jnp.concatenate([blocks[name] for name in terms], axis=0)
    else:
        rows = sum(r.size for r in terms.values())
        jac = _jacobian_by_shape(
            lambda f: _stack(residuals_fn(unravel(f)), dtype), flat, rows
        )
    return terms, _stack(terms, dtype), jac, unravel


def damped_solver(
    jac: Float[Array, "m p"],
    damping: Float[Array, ""],
    diagonal: Float[Array, " p"] | None = None,
) -> Callable[[Float[Array, " m"]], Float[Array, " p"]]:
    r"""Factorises the damped least-squares problem once and returns the map
    $v \mapsto \arg\min_\delta \lVert v + J\delta \rVert^2 + \lambda
    \delta^\top D \delta$ ($D$ = `diag(diagonal)`, default the identity).

    The Cholesky factorisation is of the smaller of the two dual forms: the
    $P \times P$ normal equations $(J^\top J + \lambda D)\delta = -J^\top v$ or
    the $M \times M$ kernel form
    $\delta = -D^{-1} J^\top (J D^{-1} J^\top + \lambda I)^{-1} v$.
    """
    m, p = jac.shape
    if m < p:
        scaled = jac if diagonal is None else jac / diagonal
        gram = scaled @ jac.T + damping * jnp.eye(m, dtype=jac.dtype)
        factor = jsl.cho_factor(gram, lower=True)
        return lambda v: -(scaled.T @ jsl.cho_solve(factor, v))
    regulariser = jnp.ones((p,), jac.dtype) if diagonal is None else diagonal
    gram = jac.T @ jac + damping * jnp.diag(regulariser)
    factor = jsl.cho_factor(gram, lower=True)
    return lambda v: -jsl.cho_solve(factor, jac.T @ v)


def _losses(terms: dict[str, Array]) -> tuple[Array, dict[str, Array]]:
    losses = {name: jnp.sum(r**2) for name, r in terms.items()}
    return sum(losses.values()), losses


class LevenbergMarquardt(AbstractGridTrainer):
    r"""The Levenberg–Marquardt trainer: damped Gauss–Newton steps on the stacked
    residual vector, with the damping adapted at every step.

    Each step computes the Jacobian $J$ of the residual vector $r$ (all loss terms,
    with their weights) and the step

    $$\delta = -(J^\top J + \lambda I)^{-1} J^\top r
            = -J^\top (J J^\top + \lambda I)^{-1} r,$$

    by a Cholesky factorisation of the smaller of the two matrices. The damping is
    $\lambda = \mu \cdot \overline{\operatorname{diag}(J^\top J)}$, relative to the
    mean curvature so that `damping` means the same for every problem. The step is
    accepted when the gain ratio $\rho$ (actual over predicted decrease of the
    loss) exceeds `accept`; then $\mu$ shrinks by $\max(1/3, 1 - (2\rho - 1)^3)$,
    otherwise the parameters are kept and $\mu$ grows by a factor that doubles
    with each consecutive rejection (Nielsen's rule).

    With `geodesic=True` (the default) each step adds the second-order correction
    of Transtrum & Sethna, $\delta + a/2$ with $a$ the damped solve of the
    second directional derivative $r''[\delta, \delta]$ (nested forward mode,
    reusing the factorisation), and is only taken when $2\lVert a \rVert /
    \lVert\delta\rVert \le$ `geodesic_ratio`. Network fits are long curved
    valleys, where this correction lets the damping fall much lower.
    `scaled=True` replaces the identity in the damping term by
    $\operatorname{diag}(J^\top J)$ (Marquardt's scaling).

    The Jacobian of the physics residual is taken one collocation point at a time
    (a few network evaluations per point); other terms use forward mode when they
    have more rows than there are parameters and reverse mode otherwise. Cost
    grows with $\min(P, M)^2 \max(P, M)$: use a modest network (width 16–40,
    depth 2–3) and a few hundred points. float64
    (`jax.config.update("jax_enable_x64", True)`) is needed to go further than
    float32 allows: on the damped oscillator of `benchmarks/accuracy.py`, Adam then
    this trainer stopped at 1.2e-4 in float32 and reached 1.2e-7 in float64
    (`benchmarks/results/accuracy.json`). No environment variable is needed on a
    busy CPU: while a fit runs, odefit keeps OpenBLAS (JAX's LAPACK on CPU) to one
    thread, so that its threads do not spin against XLA's (see
    `benchmarks/results/lapack_threads.json`).

    Extra history entries: `"damping"` ($\mu$ used in the step) and `"accepted"`
    (1.0 when the step was taken).

    **Arguments:**

    - `damping`: the initial relative damping $\mu_0$.
    - `scaled`: damp with $\operatorname{diag}(J^\top J)$ instead of the identity.
    - `geodesic`: add the geodesic acceleration.
    - `geodesic_ratio`: the largest $2\lVert a\rVert/\lVert\delta\rVert$ accepted.
    - `accept`: the smallest gain ratio for which a step is taken.
    - `min_damping`, `max_damping`: bounds on $\mu$.
    - `points`: the size of the default collocation, `odefit.Grid(points)`.

    **Example:**

    ```python
    import jax, jax.numpy as jnp, optax, odefit

    problem = odefit.IVP(lambda t, y, args: -2.0 * y, t0=0.0, t1=2.0, y0=1.0)
    model = odefit.PINN(problem, width=20, depth=2, key=jax.random.key(0))
    warm = odefit.fit(problem, model, steps=1000, key=jax.random.key(1),
                      progress=False)
    polish = odefit.fit(problem, warm.model, steps=100,
                        optimizer=odefit.LevenbergMarquardt(),
                        key=jax.random.key(2), progress=False)
    ```

    **References:** Levenberg, "A method for the solution of certain non-linear
    problems in least squares" (1944); Marquardt (1963),
    https://doi.org/10.1137/0111030; Nielsen, "Damping parameter in Marquardt's
    method" (1999), IMM-REP-1999-05; Transtrum & Sethna, "Improvements to the
    Levenberg–Marquardt algorithm for nonlinear least-squares minimization"
    (2012), https://arxiv.org/abs/1201.5885
    """

    damping: float = eqx.field(static=True)
    accept: float = eqx.field(static=True)
    min_damping: float = eqx.field(static=True)
    max_damping: float = eqx.field(static=True)
    points: int = eqx.field(static=True)
    scaled: bool = eqx.field(static=True)
    geodesic: bool = eqx.field(static=True)
    geodesic_ratio: float = eqx.field(static=True)

    def __init__(
        self,
        damping: float = 1e-3,
        *,
        scaled: bool = False,
        geodesic: bool = True,
        geodesic_ratio: float = 0.75,
        accept: float = 1e-4,
        min_damping: float = 1e-15,
        max_damping: float = 1e10,
        points: int = 256,
    ):
        self.damping = _check_positive(damping, "damping")
        self.accept = check_float(
            accept, "accept", 0.0, 1.0, open_maximum=True, what="in [0, 1)"
        )
        self.min_damping = _check_positive(min_damping, "min_damping")
        self.max_damping = _check_positive(max_damping, "max_damping")
        if not self.min_damping <= self.damping <= self.max_damping:
            raise ValueError(
                "`damping` must lie in [min_damping, max_damping] = "
                f"[{self.min_damping}, {self.max_damping}], got {self.damping}."
            )
        self.points = _check_points(points, "points")
        self.scaled = check_bool(scaled, "scaled")
        self.geodesic = check_bool(geodesic, "geodesic")
        self.geodesic_ratio = _check_positive(geodesic_ratio, "geodesic_ratio")

    def init(self, residuals_fn, params) -> dict[str, Array]:
        dtype = _ravel(params)[0].dtype
        return {
            "damping": jnp.asarray(self.damping, dtype),
            "growth": jnp.asarray(2.0, dtype),
        }

    def step(self, residuals_fn, params, state: dict[str, Any]):
        terms, r, jac, unravel = residuals_and_jacobian(residuals_fn, params)
        flat = _ravel(params)[0]
        dtype = flat.dtype
        one = jnp.ones((), dtype)
        loss, losses = _losses(terms)
        mu = state["damping"]
        column = jnp.sum(jac**2, axis=0)
        curvature = jnp.mean(column)
        # A zero Jacobian (nothing to fit) still gets a well-posed solve.
        curvature = jnp.where(curvature > 0, curvature, one)
        diagonal = jnp.maximum(column / curvature, 1e-8) if self.scaled else None
        solve = damped_solver(jac, mu * curvature, diagonal)
        delta = solve(r)
        predicted = loss - jnp.sum((r + jac @ delta) ** 2)

        def stacked(f):
            return _stack(residuals_fn(unravel(f)), dtype)

        if self.geodesic:
            # The second directional derivative of r along δ, by nested forward
            # mode; the acceleration solves the same damped system.
            def velocity(f):
                return jax.jvp(stacked, (f,), (delta,))[1]

            second = jax.jvp(velocity, (flat,), (delta,))[1]
            acceleration = solve(second)
            step = delta + acceleration / 2
            ratio = 2 * jnp.linalg.norm(acceleration) / jnp.linalg.norm(delta)
            small = ratio <= self.geodesic_ratio
        else:
            step = delta
            small = jnp.asarray(True)
        trial = flat + step
        new_loss = jnp.sum(stacked(trial) ** 2)
        actual = loss - new_loss
        finite = jnp.isfinite(new_loss) & jnp.all(jnp.isfinite(step))
        rho = jnp.where(finite & (predicted > 0), actual / predicted, -one)
        accepted = (rho > self.accept) & small
        shrink = jnp.maximum(one / 3, one - (2 * rho - 1) ** 3)
        new_mu = jnp.where(accepted, mu * shrink, mu * state["growth"])
        new_mu = jnp.clip(new_mu, self.min_damping, self.max_damping)
        growth = jnp.where(accepted, 2 * one, 2 * state["growth"])
        new_params = unravel(jnp.where(accepted, trial, flat))
        stats = {
            "loss": loss,
            **losses,
            "damping": mu,
            "accepted": accepted.astype(dtype),
        }
        return new_params, {"damping": new_mu, "growth": growth}, stats


class GaussNewton(AbstractGridTrainer):
    r"""The Gauss–Newton trainer with a backtracking line search.

    Each step solves the linearised least-squares problem for

    $$\delta = -J^\top (J J^\top + \epsilon I)^{-1} r \quad\text{or}\quad
      -(J^\top J + \epsilon I)^{-1} J^\top r$$

    (the smaller system; $\epsilon$ a tiny fixed regularisation relative to the
    mean curvature, so that the minimum-norm step is taken when there are more
    parameters than residuals), then takes the longest step $\alpha\delta$,
    $\alpha \in \{1, 1/2, \ldots, 2^{1-k}\}$, that decreases the loss by at least
    a fraction `armijo` of the linear prediction. The $k$ candidate steps are
    evaluated together. If none decreases the loss, the parameters are kept.

    Cheaper per step than [`odefit.LevenbergMarquardt`][] when the problem is
    well conditioned; Levenberg–Marquardt is more robust far from a solution.

    Extra history entry: `"step_size"` ($\alpha$; 0 when no step was taken).

    **Arguments:**

    - `regularisation`: $\epsilon$, relative to the mean of $\operatorname{diag}
        (J^\top J)$; default 1e-10 in float64 and 1e-4 in float32 (where a
        smaller one makes the Cholesky factorisation fail).
    - `line_search`: $k$, the number of step lengths tried.
    - `armijo`: the sufficient-decrease fraction.
    - `points`: the size of the default collocation, `odefit.Grid(points)`.

    **Example:**

    ```python
    import jax, odefit

    problem = odefit.IVP(lambda t, y, args: -2.0 * y, t0=0.0, t1=2.0, y0=1.0)
    model = odefit.PINN(problem, width=20, depth=2, key=jax.random.key(0))
    result = odefit.fit(problem, model, steps=50, optimizer=odefit.GaussNewton(),
                        key=jax.random.key(1), progress=False)
    ```
    """

    regularisation: float | None = eqx.field(static=True)
    line_search: int = eqx.field(static=True)
    armijo: float = eqx.field(static=True)
    points: int = eqx.field(static=True)

    def __init__(
        self,
        regularisation: float | None = None,
        *,
        line_search: int = 8,
        armijo: float = 1e-4,
        points: int = 256,
    ):
        if regularisation is not None:
            regularisation = _check_positive(regularisation, "regularisation")
        self.regularisation = regularisation
        self.line_search = _check_count(line_search, "line_search")
        self.armijo = check_float(
            armijo, "armijo", 0.0, 1.0, open_maximum=True, what="in [0, 1)"
        )
        self.points = _check_points(points, "points")

    def init(self, residuals_fn, params) -> None:
        return None

    def step(self, residuals_fn, params, state):
        terms, r, jac, unravel = residuals_and_jacobian(residuals_fn, params)
        flat = _ravel(params)[0]
        dtype = flat.dtype
        loss, losses = _losses(terms)
        curvature = jnp.mean(jnp.sum(jac**2, axis=0))
        curvature = jnp.where(curvature > 0, curvature, jnp.ones((), dtype))
        regularisation = self.regularisation
        if regularisation is None:
            regularisation = 1e-10 if jnp.finfo(dtype).bits >= 64 else 1e-4
        delta = damped_solver(jac, jnp.asarray(regularisation, dtype) * curvature)(r)
        slope = 2 * jnp.dot(r, jac @ delta)  # d/dα of the loss at α = 0 (< 0)
        alphas = jnp.asarray(0.5, dtype) ** jnp.arange(self.line_search, dtype=dtype)

        def loss_at(alpha):
            return jnp.sum(
                _stack(residuals_fn(unravel(flat + alpha * delta)), dtype) ** 2
            )

        trial = jax.vmap(loss_at)(alphas)
        ok = jnp.isfinite(trial) & (trial <= loss + self.armijo * alphas * slope)
        ok = ok & jnp.all(jnp.isfinite(delta)) & (trial < loss)
        # `argmax` picks the first (longest) acceptable step.
        alpha = jnp.where(jnp.any(ok), alphas[jnp.argmax(ok)], jnp.zeros((), dtype))
        new_params = unravel(flat + alpha * jnp.where(jnp.isfinite(delta), delta, 0))
        return new_params, state, {"loss": loss, **losses, "step_size": alpha}
