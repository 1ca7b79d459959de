r"""A-posteriori error estimates of a fitted solution, from its residual alone.

A small loss says the residual is small; it does not say how far the network is
from the true solution, because the ODE can amplify (or damp) a residual as it
propagates. The error $e = \hat y - y$ of an approximate solution $\hat y$ with
residual $R = \hat y' - f(t, \hat y)$ satisfies exactly

$$e' = f(t, \hat y) - f(t, \hat y - e) + R,$$

and, to first order in $e$, the *linearised error equation*

$$e' = J(t)\, e + R(t), \qquad J = \partial f / \partial y\,(t, \hat y(t)),$$

a linear ODE driven by the residual. Integrating it (diffrax) estimates $e$
without the true solution; the estimate is exact up to $O(\lVert e\rVert^2)$ and
the integration tolerance. Bounding instead of integrating gives Grönwall's
inequality with the logarithmic norm $\mu(J)$:

$$\lVert e(t) \rVert \le e^{\int_{t_0}^t \mu}\, \lVert e(t_0) \rVert
    + \int_{t_0}^t e^{\int_s^t \mu}\, \lVert R(s) \rVert\, ds,$$

a guaranteed bound for the linearised equation, often pessimistic when the
dynamics are oscillatory or unstable.
"""

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ._derivatives import derivatives
from ._marching import PiecewiseSolution, _trajectory
from ._problems import BVP, AbstractProblem, SecondOrderIVP
from ._unknown import resolve_args
from ._validate import check_float


class ErrorEstimate(eqx.Module):
    r"""What [`odefit.error_estimate`][] returns.

    **Attributes:**

    - `ts`: the times.
    - `error`: the estimated error $\hat y(t) - y(t)$ at `ts`, shaped like the
        solution there (`solution(t) - error` is a corrected solution).
    - `bound`: a Grönwall bound on the norm of the error of the first-order state
        (for a second-order problem, value and derivative together) at `ts`, or
        NaN for a [`odefit.BVP`][] (where no forward bound applies).
    - `relative_l2`: the estimated relative $L^2$ error
        $\lVert e \rVert / \lVert \hat y - e \rVert$ over `ts`, comparable with
        `odefit.relative_l2(pred, reference)`.
    - `max_error`: the estimated $\max |e|$.
    - `relative_l2_bound`: the bound's relative $L^2$ counterpart (an upper bound
        on `relative_l2` for the linearised equation).
    - `residual_rms`: the root-mean-square residual $\lVert R \rVert$ over `ts`, in
        the problem's units.
    """

    ts: Float[Array, " times"]
    error: Float[Array, "times *state"]
    bound: Float[Array, " times"]
    relative_l2: Float[Array, ""]
    max_error: Float[Array, ""]
    relative_l2_bound: Float[Array, ""]
    residual_rms: Float[Array, ""]


def _flat_field(problem: AbstractProblem, args):
    """The first-order vector field on a flat state vector."""
    field = problem.first_order_field()
    shape = problem.state.shape
    size = problem.state.size
    if problem.order == 1:

        def flat(t, u):
            return jnp.ravel(field(t, u.reshape(shape), args))

    else:

        def flat(t, u):
            y, dy = u[:size].reshape(shape), u[size:].reshape(shape)
            out = field(t, (y, dy), args)
            return jnp.concatenate([jnp.ravel(v) for v in out])

    return flat


def _lift(solution, order: int):
    """$t \\mapsto (u, u')$: the approximate first-order state and its derivative."""

    def lift(t):
        derivs = derivatives(solution, t, order)
        u = jnp.concatenate([jnp.ravel(d) for d in derivs[:order]])
        du = jnp.concatenate([jnp.ravel(d) for d in derivs[1:]])
        return u, du

    return lift


def _initial_mismatch(problem: AbstractProblem, solution, dtype):
    t0 = jnp.asarray(problem.t0, dtype)
    if isinstance(problem, SecondOrderIVP):
        y, dy = jax.jvp(solution, (t0,), (jnp.ones_like(t0),))
        return jnp.concatenate([jnp.ravel(y - problem.y0), jnp.ravel(dy - problem.dy0)])
    if isinstance(problem, BVP):
        # The slope error is solved for; only the value is known here.
        y = solution(t0)
        return jnp.concatenate([jnp.ravel(y - problem.ya), jnp.zeros(y.size, dtype)])
    return jnp.ravel(solution(t0) - problem.y0)


@eqx.filter_jit
def _estimate(problem, solution, ts, rtol, atol):
    dtype = problem.state.dtype
    args = resolve_args(problem.args)
    field = _flat_field(problem, args)
    lift = _lift(solution, problem.order)
    size = problem.state.size
    is_bvp = isinstance(problem, BVP)

    # Scales: the peak of each first-order component, so that the bound is taken
    # in a norm where every component is O(1). From a coarse RK4 integration of
    # the problem itself where it is an initial-value problem (independent of how
    # good the fit is), else along the fitted solution.
    grid = jnp.linspace(problem.t0, problem.t1, 257, dtype=dtype)
    us, dus = jax.vmap(lift)(grid)
    if is_bvp:
        peaks = jnp.max(jnp.abs(us), axis=0)
    else:
        start = problem.y0 if problem.order == 1 else (problem.y0, problem.dy0)
        path = _trajectory(
            problem.first_order_field(), problem.t0, problem.t1, start, args, 512
        )
        peaks = jnp.concatenate(
            [
                jnp.max(jnp.abs(p.reshape(p.shape[0], -1)), axis=0)
                for p in jax.tree.leaves(path)
            ]
        )
    scale = jnp.where(
        jnp.isfinite(peaks) & (peaks > 1e-6 * jnp.maximum(jnp.max(peaks), 1.0)),
        peaks,
        jnp.ones((), dtype),
    )
    residuals = dus - jax.vmap(field)(grid, us)
    e0 = _initial_mismatch(problem, solution, dtype)
    # The equation is linear: solve it for e / β, with β the size of its forcing,
    # so that the tolerances are relative to that size.
    beta = jnp.max(jnp.abs(residuals)) * (problem.t1 - problem.t0) + jnp.max(
        jnp.abs(e0)
    )
    beta = jnp.where(beta > 0, beta, jnp.ones((), dtype))

    def rhs(t, state, _):
        e, b, phi = state
        u, du = lift(t)
        jac = jax.jacfwd(lambda v: field(t, v))(u)
        r = du - field(t, u)
        scaled = jac * scale[None, :] / scale[:, None]
        mu = jnp.linalg.eigvalsh((scaled + scaled.T) / 2)[-1]
        de = jac @ e + r / beta
        db = mu * b + jnp.linalg.norm(r / scale) / beta
        dphi = None if phi is None else jac @ phi
        return de, db, dphi

    # For a BVP the unknown initial slope error is found by linear shooting:
    # e = e_p + Φ s with Φ' = J Φ, Φ(t0) = [0; I].
    phi0 = None
    if is_bvp:
        phi0 = jnp.concatenate(
            [jnp.zeros((size, size), dtype), jnp.eye(size, dtype=dtype)]
        )
    state0 = (e0 / beta, jnp.linalg.norm(e0 / scale) / beta, phi0)
    jump_ts = None
    if isinstance(solution, PiecewiseSolution) and len(solution.breakpoints) > 2:
        jump_ts = jnp.asarray(solution.breakpoints[1:-1], dtype)
    end = jnp.asarray(problem.t1, dtype)
    save = jnp.concatenate([ts, end[None]])
    sol = dfx.diffeqsolve(
        dfx.ODETerm(rhs),
        dfx.Tsit5(),
        t0=problem.t0,
        t1=problem.t1,
        dt0=None,
        y0=state0,
        saveat=dfx.SaveAt(ts=save),
        stepsize_controller=dfx.PIDController(rtol=rtol, atol=atol, jump_ts=jump_ts),
        max_steps=100_000,
        throw=False,
    )
    e, b, phi = sol.ys
    if is_bvp:
        miss = jnp.ravel(solution(end) - problem.yb) / beta
        slope = jnp.linalg.solve(phi[-1, :size, :], miss - e[-1, :size])
        e = e + jnp.einsum("tij,j->ti", phi, slope)
        b = jnp.full_like(b, jnp.nan)
    e, b = e[:-1] * beta, b[:-1] * beta * jnp.max(scale)
    error = e[:, :size].reshape(ts.shape[0], *problem.state.shape)
    # Relative to the corrected solution, the estimate of the true one.
    pred = jax.vmap(solution)(ts)
    norm = jnp.linalg.norm(jnp.ravel(pred - error))
    us_t, dus_t = jax.vmap(lift)(ts)
    r_t = dus_t - jax.vmap(field)(ts, us_t)
    return (
        ErrorEstimate(
            ts=ts,
            error=error,
            bound=b,
            relative_l2=jnp.linalg.norm(jnp.ravel(error)) / norm,
            max_error=jnp.max(jnp.abs(error)),
            relative_l2_bound=jnp.linalg.norm(b) / norm,
            residual_rms=jnp.sqrt(jnp.mean(jnp.sum(r_t**2, axis=1))),
        ),
        sol.result,
    )


def error_estimate(
    problem: AbstractProblem,
    solution,
    ts: Float[ArrayLike, " times"] | None = None,
    *,
    rtol: float | None = None,
    atol: float | None = None,
) -> ErrorEstimate:
    r"""Estimates how far `solution` is from the true solution of `problem`, from
    the residual of `solution` alone.

    Integrates the linearised error equation

    $$e' = J(t)\, e + R(t), \qquad R = \hat y' - f(t, \hat y), \quad
      J = \partial f/\partial y\,(t, \hat y),$$

    along the fitted solution $\hat y$ with diffrax (Tsit5, adaptive steps; for
    second-order problems on the first-order system of value and derivative),
    from the mismatch of the initial conditions. For a [`odefit.BVP`][] the
    unknown initial slope error is found by linear shooting so that the error
    also matches at $t_1$. Alongside, it integrates the Grönwall bound with the
    logarithmic norm of $J$ (in the norm that scales each component by its peak).

    No reference solution is used: the estimate is what a user can compute for a
    problem whose solution is unknown. It is exact up to $O(\lVert e \rVert^2)$
    — for linear ODEs up to the integration tolerance — so it tracks the true
    error closely once the fit is good, and it is the size of the correction
    `solution(t) - error` would make. Costs about one classical solve.

    **Arguments:**

    - `problem`: the problem `solution` approximates ([`odefit.IVP`][],
        [`odefit.SecondOrderIVP`][] or [`odefit.BVP`][]).
    - `solution`: a function of one scalar time returning the state, e.g.
        `result.model` of [`odefit.fit`][] or [`odefit.fit_marching`][].
    - `ts`: where to report the error; default 1001 points on $[t_0, t_1]$.
    - `rtol`, `atol`: tolerances of the integration, relative to the size of the
        forcing (the error is integrated in those units); default 1e-7 and 1e-9
        in float64, 1e-4 and 1e-6 in float32.

    **Returns:** an [`odefit.ErrorEstimate`][].

    **Example:**

    ```python
    import jax, jax.numpy as jnp, odefit

    problem = odefit.IVP(lambda t, y, args: -2.0 * y, t0=0.0, t1=2.0, y0=1.0)
    model = odefit.PINN(problem, width=16, depth=2, key=jax.random.key(0))
    result = odefit.fit(problem, model, steps=2000, key=jax.random.key(1),
                        progress=False)
    estimate = odefit.error_estimate(problem, result.model)
    estimate.relative_l2      # compare: odefit.relative_l2(pred, reference)
    ```

    **Reference:** the linearised error (defect) equation is classical; see
    Hairer, Nørsett & Wanner, *Solving Ordinary Differential Equations I*, §I.10
    (the fundamental lemma) and §II.3 on global error estimation.
    """
    if not isinstance(problem, AbstractProblem):
        raise TypeError(
            "`problem` must be an odefit problem (IVP, SecondOrderIVP, BVP), got "
            f"{type(problem).__name__}."
        )
    if not callable(solution):
        raise TypeError(
            "`solution` must map a scalar time to the state (e.g. result.model), "
            f"got {type(solution).__name__}."
        )
    dtype = problem.state.dtype
    if ts is None:
        ts = jnp.linspace(problem.t0, problem.t1, 1001, dtype=dtype)
    ts = jnp.asarray(ts)
    if ts.ndim != 1 or ts.size == 0:
        raise ValueError(f"`ts` must be a non-empty 1-D array, got shape {ts.shape}.")
    ts = ts.astype(dtype)
    finite = np.isfinite(np.asarray(ts))
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(
            f"`ts` must be finite, got {bad.size} non-finite entries (NaN or inf; "
            f"the first at index {bad[0]}: {np.asarray(ts)[bad[0]]})."
        )
    lo, hi = float(jnp.min(ts)), float(jnp.max(ts))
    # The interval as the state's dtype holds it: in float32 an endpoint such as
    # 2*pi rounds to a value just above or below its float64 one.
    t0, t1 = (float(jnp.asarray(t, dtype)) for t in (problem.t0, problem.t1))
    if (
        lo < min(t0, problem.t0)
        or hi > max(t1, problem.t1)
        or bool(jnp.any(jnp.diff(ts) < 0))
    ):
        raise ValueError(
            f"`ts` must be increasing times in [t0, t1] = [{problem.t0}, "
            f"{problem.t1}], got times from {lo} to {hi}."
        )
    out = jax.eval_shape(solution, jnp.asarray(problem.t0, dtype))
    if out.shape != problem.state.shape:
        raise ValueError(
            f"`solution` returns shape {out.shape} but the problem's state has "
            f"shape {problem.state.shape}."
        )
    wide = jnp.finfo(dtype).bits >= 64
    rtol = (1e-7 if wide else 1e-4) if rtol is None else rtol
    atol = (1e-9 if wide else 1e-6) if atol is None else atol
    rtol = check_float(rtol, "rtol", 0.0, open_minimum=True)
    atol = check_float(atol, "atol", 0.0, open_minimum=True)
    estimate, result = _estimate(problem, solution, ts, rtol, atol)
    if not bool(result == dfx.RESULTS.successful):
        raise RuntimeError(
            "The integration of the error equation failed "
            f"({dfx.RESULTS[result]}); the fitted solution may be far from "
            "smooth or the problem stiff over [t0, t1]."
        )
    return estimate
