r"""Covariances and confidence intervals for the identified parameters of an inverse
problem: a Laplace (Gauss–Newton) approximation at the optimum of a fit, and the
classical answer from nonlinear least squares on a diffrax solve."""

import math
from collections.abc import Callable, Mapping

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import optimistix as optx
import scipy.stats
from jaxtyping import Array, Float, PyTree

from . import _setup
from ._collocation import AbstractCollocation, Grid
from ._custom_types import Key
from ._ensemble import EnsembleResult
from ._least_squares import _ravel, residuals_and_jacobian
from ._losses import Term
from ._objective import make_objective, split
from ._observations import Observations
from ._problems import IVP, AbstractProblem, SecondOrderIVP, _default_tolerances
from ._residuals import Residuals
from ._result import FitResult
from ._unknown import Unknown, args_mask, has_unknowns, resolve_args
from ._validate import check_float


def _is_unknown(x) -> bool:
    return isinstance(x, Unknown)


class ParameterIntervals(eqx.Module):
    r"""What [`odefit.parameter_intervals`][] and [`odefit.classical_intervals`][]
    return: the identified parameters with their covariance and confidence
    intervals.

    Every array runs over the entries of the problem's [`odefit.Unknown`][]s, in the
    order of `jax.tree_util.tree_leaves(args)` (an array-valued `Unknown`
    contributes each of its entries); `labels` names them.

    **Attributes:**

    - `labels`: where each entry sits in `args`, e.g. `"[0]"` or `"['rate'][1]"`.
    - `estimate`: the identified values $\hat p$.
    - `covariance`: their covariance matrix, in the problem's own units.
    - `standard_error`: the square roots of its diagonal.
    - `lower`, `upper`: the confidence interval of each entry at `level`. For a
        `positive=True` unknown the interval is computed for its logarithm and
        mapped back, so it is not symmetric about the estimate and never includes
        zero.
    - `level`: the nominal coverage, e.g. 0.95.
    - `noise`: the standard deviation $\hat\sigma$ of the measurement noise used
        (estimated from the data misfit unless it was given).
    - `dof`: the residual degrees of freedom, $n - \gamma$ (infinite when the
        noise level was given: the intervals then use the normal quantile instead
        of Student's t).
    - `effective_parameters`: $\gamma$, the number of parameters the data
        effectively determine (see [`odefit.parameter_intervals`][]).
    - `observations`: $n$, the number of measured values.
    - `method`: `"laplace"` (a PINN fit) or `"classical"` (least squares on a
        diffrax solve).
    """

    labels: tuple[str, ...] = eqx.field(static=True)
    estimate: Float[Array, " p"]
    covariance: Float[Array, "p p"]
    standard_error: Float[Array, " p"]
    lower: Float[Array, " p"]
    upper: Float[Array, " p"]
    level: float = eqx.field(static=True)
    noise: Float[Array, ""]
    dof: float = eqx.field(static=True)
    effective_parameters: float = eqx.field(static=True)
    observations: int = eqx.field(static=True)
    method: str = eqx.field(static=True)

    @property
    def correlation(self) -> Float[Array, "p p"]:
        """The correlation matrix of the estimates."""
        se = self.standard_error
        return self.covariance / (se[:, None] * se[None, :])

    def covers(self, values) -> np.ndarray:
        """Whether each interval contains the corresponding entry of `values`
        (e.g. the true parameters of a synthetic data set)."""
        values = np.ravel(np.asarray(values, dtype=np.asarray(self.lower).dtype))
        return (np.asarray(self.lower) <= values) & (values <= np.asarray(self.upper))

    def summary(self) -> str:
        """A table of the estimates, standard errors and intervals."""
        pct = f"{100 * self.level:g}%"
        lines = [
            f"{self.method} intervals ({pct}), noise {float(self.noise):.4g}, "
            f"{self.observations} observations, "
            f"{self.effective_parameters:.1f} effective parameters",
            f"{'':>12} {'estimate':>12} {'std error':>12} {'lower':>12} {'upper':>12}",
        ]
        for i, label in enumerate(self.labels):
            lines.append(
                f"{label:>12} {float(self.estimate[i]):12.6g} "
                f"{float(self.standard_error[i]):12.4g} "
                f"{float(self.lower[i]):12.6g} {float(self.upper[i]):12.6g}"
            )
        return "\n".join(lines)


def _labels(args) -> tuple[str, ...]:
    labels = []
    with_paths = jtu.tree_flatten_with_path(args, is_leaf=_is_unknown)[0]
    for path, leaf in with_paths:
        if not _is_unknown(leaf):
            continue
        name = jtu.keystr(path) or "args"
        size = int(np.size(leaf.raw))
        if np.ndim(leaf.raw) == 0:
            labels.append(name)
        else:
            labels += [
                f"{name}[{', '.join(map(str, np.unravel_index(k, leaf.raw.shape)))}]"
                for k in range(size)
            ]
    return tuple(labels)


def _positive_mask(args) -> np.ndarray:
    """One flag per Unknown entry: whether it is stored as a logarithm."""
    flags = [
        np.full(np.size(leaf.raw), leaf.positive)
        for leaf in jtu.tree_leaves(args, is_leaf=_is_unknown)
        if _is_unknown(leaf)
    ]
    return np.concatenate(flags)


def _check_problem_args(problem: AbstractProblem, where: str):
    if not has_unknowns(problem.args):
        raise ValueError(
            f"{where} has no `odefit.Unknown` in its `args` ({problem.args!r}): "
            "intervals are for the identified parameters of an inverse problem."
        )


def _check_level(level) -> float:
    return check_float(
        level, "level", 0.0, 1.0, open_minimum=True, open_maximum=True, what="in (0, 1)"
    )


def _check_noise(noise):
    if noise is None:
        return None
    return check_float(noise, "noise", 0.0, open_minimum=True)


def _intervals(
    raw: np.ndarray,
    raw_cov: np.ndarray,
    positive: np.ndarray,
    *,
    labels,
    level: float,
    noise: float,
    dof: float,
    gamma: float,
    n: int,
    method: str,
    dtype,
) -> ParameterIntervals:
    """Intervals from the covariance of the raw (trained) values: for a positive
    unknown the raw value is its logarithm, so its interval is mapped back through
    `exp` and its covariance by the delta method."""
    se_raw = np.sqrt(np.diag(raw_cov))
    q = 1 - (1 - level) / 2
    quantile = scipy.stats.norm.ppf(q) if math.isinf(dof) else scipy.stats.t.ppf(q, dof)
    low, high = raw - quantile * se_raw, raw + quantile * se_raw
    value = np.where(positive, np.exp(raw), raw)
    scale = np.where(positive, value, 1.0)
    cov = raw_cov * scale[:, None] * scale[None, :]

    def array(x):
        return jnp.asarray(x, dtype)

    return ParameterIntervals(
        labels=labels,
        estimate=array(value),
        covariance=array(cov),
        standard_error=array(np.sqrt(np.diag(cov))),
        lower=array(np.where(positive, np.exp(low), low)),
        upper=array(np.where(positive, np.exp(high), high)),
        level=level,
        noise=array(noise),
        dof=float(dof),
        effective_parameters=float(gamma),
        observations=int(n),
        method=method,
    )


class _Marginal(eqx.Module):
    r"""The weights marginalised out of the linearised problem, for any noise
    level: the singular value decomposition $A_w = U \operatorname{diag}(s) V^\top$
    of the weights' columns, done once."""

    u: np.ndarray
    s2: np.ndarray
    a_p: np.ndarray
    rows: np.ndarray

    def shrinkage(self, sigma2: float, prior_precision: float) -> np.ndarray:
        # The weights' share of each direction: s^2 / (s^2 + sigma^2 alpha).
        denominator = self.s2 + sigma2 * prior_precision
        return np.divide(
            self.s2, denominator, out=np.zeros_like(self.s2), where=denominator > 0
        )

    def precision(self, sigma2: float, prior_precision: float) -> np.ndarray:
        r"""$S = A_p^\top (I - H_w) A_p$ with $H_w = U \operatorname{diag}(s^2 /
        (s^2 + \sigma^2\alpha)) U^\top$, the Schur complement of $A^\top A +
        \sigma^2 \alpha I_w$ (the precision of $p$ is $S / \sigma^2$)."""
        c = self.u.T @ self.a_p
        kept = self.shrinkage(sigma2, prior_precision)[:, None] * c
        return self.a_p.T @ self.a_p - c.T @ kept

    def hat_trace(
        self, sigma2: float, prior_precision: float, raw_cov: np.ndarray
    ) -> float:
        r"""$\gamma$, the trace over the data rows of the hat matrix
        $H = H_w + (I - H_w) A_p S^{-1} A_p^\top (I - H_w)$."""
        shrink = self.shrinkage(sigma2, prior_precision)
        u_data = self.u[self.rows]
        h_w = float(np.sum(u_data**2 * shrink))
        b = self.a_p - self.u @ (shrink[:, None] * (self.u.T @ self.a_p))
        b_data = b[self.rows]
        return h_w + float(np.sum((b_data @ raw_cov) * b_data))


def _invert(precision: np.ndarray, labels) -> np.ndarray:
    eigenvalues, vectors = np.linalg.eigh(precision)
    if eigenvalues[0] <= eigenvalues[-1] * 1e-14 or eigenvalues[-1] <= 0:
        raise ValueError(
            "The data do not determine the unknowns "
            f"{', '.join(labels)}: their marginal precision matrix is singular "
            f"(eigenvalues {eigenvalues}). Some parameters (or combinations) are "
            "not identifiable from these observations."
        )
    return (vectors / eigenvalues) @ vectors.T


_jacobian = eqx.filter_jit(residuals_and_jacobian)


def parameter_intervals(
    result: FitResult,
    observations: Observations,
    *,
    level: float = 0.95,
    collocation: AbstractCollocation | None = None,
    weights: Mapping[str, float] | None = None,
    terms: Mapping[str, Term] | None = None,
    noise: float | None = None,
    prior_precision: float = 1.0,
    key: Key | None = None,
) -> ParameterIntervals:
    r"""Covariance and confidence intervals for the [`odefit.Unknown`][]s of an
    inverse fit: a Laplace approximation at the optimum.

    The loss the fit minimised, $L(\theta) = \frac{w_d}{n}\lVert d(\theta)
    \rVert^2 + \sum_k \lVert r_k(\theta) \rVert^2$ over all its parameters
    $\theta = (w, p)$ (the network's weights $w$ and the raw unknowns $p$; $d$ the
    $n$ data misfits, $r_k$ the physics residual and any other term), is read as a
    negative log-likelihood: Gaussian measurement noise of standard deviation
    $\sigma$, and the physics residual a soft constraint whose weight relative to
    the data is the one the fit used. With $A$ the Jacobian of the stacked
    residuals at the optimum, scaled so that its data rows are those of the raw
    misfits, and a Gaussian prior of precision $\alpha$ (`prior_precision`) on
    each network weight, the linearised posterior has precision
    $(A^\top A + \sigma^2 \alpha I_w)/\sigma^2$ (the Gauss–Newton matrix). Its
    marginal for $p$ is the inverse of a Schur complement,

    $$\Sigma_p = \sigma^2 \bigl(A_p^\top (I - H_w) A_p\bigr)^{-1}, \qquad
      H_w = A_w (A_w^\top A_w + \sigma^2\alpha I)^{-1} A_w^\top,$$

    computed from one singular value decomposition of the weights' columns $A_w$,
    without forming or inverting the Gauss–Newton matrix. The prior only decides
    how much the weight directions that neither data nor physics can see may
    move; without it ($\alpha \to 0$) a network with more weights than residual
    rows could absorb any change of $p$ and the marginal would be degenerate. The
    intervals change little over many decades of $\alpha$.

    The noise level is estimated from the data misfit,
    $\hat\sigma^2 = \lVert d \rVert^2 / (n - \gamma)$, where $\gamma$ is the
    trace of the hat matrix over the data rows: the number of parameters the data
    effectively fit (MacKay's effective number of parameters; $\hat\sigma$ and
    $\gamma$ are solved for together). When the physics holds the network to the
    ODE, $\gamma$ is a few more than the number of unknowns and the answer is close
    to the classical one of [`odefit.classical_intervals`][]; a network free to
    bend towards the noise raises $\gamma$, which raises $\hat\sigma$ and widens
    the intervals instead of hiding the misfit. Intervals are
    $\hat p \pm t_{n-\gamma}\,\mathrm{se}$ (Student's t; the normal quantile when
    `noise` is given), for the raw (log, if `positive=True`) values, mapped back.

    The approximation is as good as the fit: run it on a converged fit (e.g.
    after a least-squares trainer). A residual weight well above the data's
    (e.g. `weights={"residual": 100.0}`) holds the network to the ODE, so that the
    estimates are as good as the classical ones; with equal weights the network
    also fits part of the noise and the intervals come out wider.

    **Arguments:**

    - `result`: the fit, an [`odefit.FitResult`][] (an ensemble member
        `ensemble[i]`, or a result returned by [`odefit.load`][], will do). Its
        problem must have `Unknown`s.
    - `observations`: the [`odefit.Observations`][] it was fit to.
    - `level`: the nominal coverage of the intervals.
    - `collocation`: where to evaluate the physics residual; default
        `odefit.Grid(256)`. Use the fit's own (fixed) collocation when it had one.
    - `weights`, `terms`: as given to the fit.
    - `noise`: the measurement noise's standard deviation, when known; default:
        estimated from the misfit as above.
    - `prior_precision`: $\alpha$, the precision of the Gaussian prior on each
        network weight.
    - `key`: for a random `collocation`; default a fixed key.

    **Returns:** an [`odefit.ParameterIntervals`][] with `method="laplace"`.

    **Example:**

    ```python
    import jax, jax.numpy as jnp, odefit

    jax.config.update("jax_enable_x64", True)
    truth = odefit.IVP(lambda t, y, k: -k * y, t0=0.0, t1=2.0, y0=1.0, args=1.3)
    ts = jnp.linspace(0.0, 2.0, 20)
    noisy = truth.solve(ts) + 0.01 * jax.random.normal(jax.random.key(0), (20,))
    data = odefit.Observations(ts, noisy)
    problem = odefit.IVP(lambda t, y, k: -k * y, t0=0.0, t1=2.0, y0=1.0,
                         args=odefit.Unknown(1.0, positive=True))
    model = odefit.PINN(problem, width=16, depth=2, key=jax.random.key(1))
    weights = {"residual": 100.0}
    result = odefit.fit(problem, model, steps=60, observations=data,
                        weights=weights,
                        optimizer=odefit.LevenbergMarquardt(points=64),
                        key=jax.random.key(2), progress=False)
    intervals = odefit.parameter_intervals(
        result, data, collocation=odefit.Grid(64), weights=weights
    )
    print(intervals.summary())
    ```

    **References:** MacKay, "Bayesian interpolation" (1992),
    https://doi.org/10.1162/neco.1992.4.3.415 (the evidence framework and the
    effective number of parameters); Bates & Watts, *Nonlinear Regression
    Analysis and Its Applications* (1988), ch. 2 (linearised intervals).
    """
    if not isinstance(result, FitResult):
        hint = (
            " For an ensemble, pass one member: `result[i]`."
            if isinstance(result, EnsembleResult)
            else ""
        )
        raise TypeError(
            "`result` must be an odefit.FitResult (what `fit` returns), got "
            f"{type(result).__name__}.{hint}"
        )
    if observations is None:
        raise ValueError(
            "`observations` is None: intervals need the `odefit.Observations` the "
            "fit was made with (the noise level is estimated from their misfit)."
        )
    problem, model = result.problem, result.model
    _check_problem_args(problem, "`result.problem`")
    observations = _setup.check_observations(observations, problem, model)
    level = _check_level(level)
    noise = _check_noise(noise)
    prior_precision = check_float(
        prior_precision, "prior_precision", 0.0, open_minimum=True
    )
    if collocation is None:
        collocation = Grid(256)
    elif not isinstance(collocation, AbstractCollocation):
        raise TypeError(
            "`collocation` must be an odefit collocation such as odefit.Grid(256), "
            f"got {type(collocation).__name__}."
        )
    key = jr.key(0) if key is None else _setup.check_key(key)

    params, static = split(model, problem.args)
    objective = make_objective(problem, static, observations, weights, terms)
    data_weight = observations.weight * objective.weights["data"]
    if data_weight <= 0:
        raise ValueError(
            "The data term has weight 0 (`weights['data']` or `observations."
            "weight`): there is no misfit to estimate intervals from."
        )
    state = collocation.init(problem.t0, problem.t1, problem.state.dtype)
    ts, _ = collocation.sample(state, problem.t0, problem.t1, jnp.ones_like, key=key)

    model_params, args_params = params
    indicator = (
        jtu.tree_map(lambda x: jnp.zeros(x.shape, bool), model_params),
        jtu.tree_map(lambda x: jnp.ones(x.shape, bool), args_params),
    )
    columns = np.asarray(
        jnp.concatenate([jnp.ravel(x) for x in jtu.tree_leaves(indicator)])
    )
    flat = np.asarray(_ravel(params)[0])
    with jax.numpy_dtype_promotion("standard"):
        residual_terms, _, jac, _ = _jacobian(Residuals(objective, ts), params)
    jac = np.asarray(jac, np.float64)
    sizes = [int(r.size) for r in residual_terms.values()]
    rows = np.concatenate(
        [
            np.full(size, name == "data")
            for name, size in zip(residual_terms, sizes, strict=True)
        ]
    )
    n = int(rows.sum())
    # Scaled so that the data rows are the raw misfits d; the other rows keep
    # their weight relative to the data.
    a = jac * math.sqrt(n / data_weight)
    misfit = np.asarray(residual_terms["data"], np.float64) * math.sqrt(n / data_weight)
    u, sv, _ = np.linalg.svd(a[:, ~columns], full_matrices=False)
    marginal = _Marginal(u, sv**2, a[:, columns], rows)
    labels = _labels(problem.args)
    rss = float(misfit @ misfit)
    if noise is None and rss == 0:
        raise ValueError(
            "The fit passes exactly through every observation, so the noise level "
            "cannot be estimated from the misfit: pass `noise=`."
        )
    count = int(columns.sum())
    # The noise level and the effective number of parameters depend on each other
    # (the prior on the weights counts relative to the noise): iterate from the
    # classical guess, gamma = the number of unknowns.
    sigma2 = rss / max(n - count, 1) if noise is None else noise**2
    for _ in range(50):
        raw_cov = _invert(marginal.precision(sigma2, prior_precision), labels)
        gamma = marginal.hat_trace(sigma2, prior_precision, raw_cov)
        if noise is not None:
            break
        if n - gamma <= 0:
            raise ValueError(
                f"The fit has {gamma:.1f} effective parameters for {n} observed "
                "values: no degrees of freedom are left to estimate the noise. "
                "Pass `noise=`, more observations, or a larger `prior_precision`."
            )
        new = rss / (n - gamma)
        converged = abs(new - sigma2) <= 1e-10 * sigma2
        sigma2 = new
        if converged:
            break
    if noise is None:
        dof, sigma = n - gamma, math.sqrt(sigma2)
        raw_cov = _invert(marginal.precision(sigma2, prior_precision), labels)
    else:
        dof, sigma = math.inf, noise
    return _intervals(
        flat[columns],
        sigma**2 * raw_cov,
        _positive_mask(problem.args),
        labels=labels,
        level=level,
        noise=sigma,
        dof=dof,
        gamma=gamma,
        n=n,
        method="laplace",
        dtype=problem.state.dtype,
    )


def _whole_state(ys):
    return ys


def _position(ys):
    return ys[0]


def _initial_state(problem: AbstractProblem):
    if isinstance(problem, IVP):
        return problem.y0, _whole_state
    if isinstance(problem, SecondOrderIVP):
        return (problem.y0, problem.dy0), _position
    raise TypeError(
        "`problem` must be an odefit.IVP or odefit.SecondOrderIVP (a classical "
        f"fit integrates it from its initial values), got {type(problem).__name__}."
    )


class _Misfit(eqx.Module):
    """`d(p)`: the diffrax solution at the observation times minus the data."""

    field: Callable
    y0: PyTree
    output: Callable = eqx.field(static=True)
    observe: Callable | None = eqx.field(static=True)
    rest: PyTree
    t0: Array
    ts: Array
    ys: Array
    rtol: float = eqx.field(static=True)
    atol: float = eqx.field(static=True)

    def __call__(self, raw: PyTree) -> Array:
        args = resolve_args(eqx.combine(raw, self.rest))
        sol = dfx.diffeqsolve(
            dfx.ODETerm(self.field),
            dfx.Tsit5(),
            t0=self.t0,
            t1=self.ts[-1],
            dt0=None,
            y0=self.y0,
            args=args,
            saveat=dfx.SaveAt(ts=self.ts),
            stepsize_controller=dfx.PIDController(rtol=self.rtol, atol=self.atol),
            adjoint=dfx.ForwardMode(),
            max_steps=100_000,
        )
        pred = self.output(sol.ys)
        if self.observe is not None:
            pred = jax.vmap(self.observe)(pred)
        return jnp.ravel(pred - self.ys)


@eqx.filter_jit
def _classical_fit(misfit: _Misfit, raw: PyTree, solver, max_steps: int):
    flat, unravel = _ravel(raw)

    def fn(p, _):
        return misfit(unravel(p))

    sol = optx.least_squares(fn, solver, flat, max_steps=max_steps, throw=False)
    return sol.value, fn(sol.value, None), jax.jacfwd(fn)(sol.value, None), sol.result


def classical_intervals(
    problem: AbstractProblem,
    observations: Observations,
    *,
    level: float = 0.95,
    noise: float | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 256,
) -> ParameterIntervals:
    r"""The classical answer to an inverse problem: its [`odefit.Unknown`][]s fit by
    nonlinear least squares on a diffrax solve, with the Laplace (linearised)
    intervals.

    Minimises $\lVert d(p) \rVert^2$, $d_j = h(y(t_j; p)) - y_j$ with $y$ the
    diffrax solution (`Tsit5`, forward-mode sensitivities), by
    `optimistix.least_squares` with Levenberg–Marquardt, starting from the
    problem's current `Unknown` values. Then, with $J = \partial d/\partial p$ at
    the optimum and $P$ unknowns,

    $$\hat\sigma^2 = \frac{\lVert d \rVert^2}{n - P}, \qquad
      \Sigma_p = \hat\sigma^2 (J^\top J)^{-1},$$

    and intervals $\hat p \pm t_{n-P}\,\mathrm{se}$ for the raw (log, if
    `positive=True`) values, mapped back. This is the reference for
    [`odefit.parameter_intervals`][].

    **Arguments:**

    - `problem`: an [`odefit.IVP`][] or [`odefit.SecondOrderIVP`][] whose `args`
        hold `Unknown`s (the starting guesses), e.g. a fit's `result.problem`.
    - `observations`: the data.
    - `level`, `noise`: as for [`odefit.parameter_intervals`][].
    - `rtol`, `atol`: the least-squares solver's tolerances; default 1e-8 in
        float64 and 1e-4 in float32. The ODE is solved with the tolerances of
        `problem.solve`.
    - `max_steps`: the least-squares solver's step budget.

    **Returns:** an [`odefit.ParameterIntervals`][] with `method="classical"`.

    **Example:**

    ```python
    import jax, jax.numpy as jnp, odefit

    jax.config.update("jax_enable_x64", True)
    truth = odefit.IVP(lambda t, y, k: -k * y, t0=0.0, t1=2.0, y0=1.0, args=1.3)
    ts = jnp.linspace(0.0, 2.0, 20)
    noisy = truth.solve(ts) + 0.01 * jax.random.normal(jax.random.key(0), (20,))
    problem = odefit.IVP(lambda t, y, k: -k * y, t0=0.0, t1=2.0, y0=1.0,
                         args=odefit.Unknown(1.0, positive=True))
    intervals = odefit.classical_intervals(problem, odefit.Observations(ts, noisy))
    ```
    """
    _setup.check_problem(problem)
    _check_problem_args(problem, "`problem`")
    y0, output = _initial_state(problem)
    if not isinstance(observations, Observations):
        raise TypeError(
            "`observations` must be an odefit.Observations(ts, ys), got "
            f"{type(observations).__name__}."
        )
    level = _check_level(level)
    noise = _check_noise(noise)
    dtype = problem.state.dtype
    ode_rtol, ode_atol = _default_tolerances(dtype)
    # The least-squares tolerances: as tight as the solve's accuracy allows.
    loose = 1e-8 if jnp.finfo(dtype).bits >= 64 else 1e-4
    rtol = loose if rtol is None else check_float(rtol, "rtol", 0.0, open_minimum=True)
    atol = loose if atol is None else check_float(atol, "atol", 0.0, open_minimum=True)
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"`max_steps` must be an integer >= 1, got {max_steps!r}.")
    ts = np.asarray(observations.ts)
    if ts.min() < problem.t0 or ts.max() > problem.t1:
        raise ValueError(
            f"`observations.ts` must lie in [t0, t1] = [{problem.t0}, {problem.t1}], "
            f"got times from {ts.min()} to {ts.max()}."
        )
    order = np.argsort(ts, kind="stable")
    ts = jnp.asarray(ts[order], dtype)
    ys = jnp.asarray(np.asarray(observations.ys)[order], dtype)
    raw_args, rest = eqx.partition(problem.args, args_mask(problem.args))
    p_hat, d, jac, outcome = _classical_fit(
        _Misfit(
            problem.first_order_field(),
            y0,
            output,
            observations.observe,
            rest,
            jnp.asarray(problem.t0, dtype),
            ts,
            ys,
            ode_rtol,
            ode_atol,
        ),
        raw_args,
        optx.LevenbergMarquardt(rtol=rtol, atol=atol),
        max_steps,
    )
    if outcome != optx.RESULTS.successful:
        raise RuntimeError(
            "The classical least-squares fit did not converge: "
            f"{str(optx.RESULTS[outcome]).rstrip('.')}. Start from better "
            "guesses (e.g. a PINN fit's `result.problem`) or raise `max_steps`."
        )
    d, jac = np.asarray(d, np.float64), np.asarray(jac, np.float64)
    n, count = d.size, jac.shape[1]
    labels = _labels(problem.args)
    raw_cov = _invert(jac.T @ jac, labels)
    if noise is None:
        dof = n - count
        if dof <= 0:
            raise ValueError(
                f"{count} unknowns for {n} observed values: no degrees of freedom "
                "are left to estimate the noise. Pass `noise=`."
            )
        sigma = math.sqrt(float(d @ d) / dof)
    else:
        dof, sigma = math.inf, noise
    return _intervals(
        np.asarray(p_hat, np.float64),
        sigma**2 * raw_cov,
        _positive_mask(problem.args),
        labels=labels,
        level=level,
        noise=sigma,
        dof=dof,
        gamma=count,
        n=n,
        method="classical",
        dtype=dtype,
    )
