"""The ODE accuracy benchmark: how close odefit gets to the true solution, how fast,
and whether its error indicator says so.

For every problem, each method trains a physics-informed network (exact initial or
boundary conditions, time scaled to [-1, 1], state non-dimensionalised by the
problem's characteristic scale) and is scored against a diffrax reference solve at
tight tolerances (rtol 1e-11, atol 1e-12 in float64) on a dense grid:

- **Adam→LM**: an Adam warm-up (learning rate 1e-2 decaying to 1e-4), then
  `odefit.LevenbergMarquardt` on a fixed grid, in one `odefit.fit_stages` call;
- **Adam→L-BFGS**: the same warm-up, then `optax.lbfgs()` on the same grid;
- **causal Adam→LM**: the same, with the residual causally weighted in time
  (`odefit.CausalWeighting`, epsilon 1, 32 chunks) during the warm-up and the
  first half of the polish;
- **marching Adam→LM**: `odefit.fit_marching`, windows chosen from the problem
  (`odefit.auto_breakpoints`), each window Adam→LM;
- **Adam (same time)**: `odefit.fit` with its defaults (Adam 3e-3 decaying, 256
  uniform points redrawn each step over a window growing from t0), on the same
  network, given as many steps as fit in the wall time of the slowest other method
  of that problem (calibrated from a short run to use about 80% of the time, then
  continued at the schedule's final learning rate 3e-5 until the time is used;
  the step rate of a shared machine drifts) — so the gain of the others is
  measured, not claimed.

Columns: relative L2 error and max |error| against the reference; the error
indicator `odefit.error_estimate(...).relative_l2` (the linearised error equation
integrated along the fit, no reference used); the wall time of the fit (compilation
included, scoring excluded); optimiser steps; the dtype.

    python benchmarks/accuracy.py            # the full table (about 15-20 minutes)
    python benchmarks/accuracy.py --quick    # three problems
    python benchmarks/accuracy.py --only oscillator,decay
    python benchmarks/accuracy.py --readme   # also rewrite the Accuracy section of
                                             # benchmarks/README.md

Small dense factorisations are fastest single-threaded on CPU, so this script sets
`OMP_NUM_THREADS=1` (unless set) before JAX loads its LAPACK.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import odefit  # noqa: E402

HERE = Path(__file__).resolve().parent


# ------------------------------------------------------------------------- problems


def exponential_decay(dtype=jnp.float64):
    return odefit.IVP(lambda t, y, args: -2.0 * y, 0.0, 2.0, jnp.asarray(1.0, dtype))


def logistic(dtype=jnp.float64):
    return odefit.IVP(
        lambda t, y, args: y * (1.0 - y), 0.0, 10.0, jnp.asarray(0.1, dtype)
    )


def damped_oscillator(dtype=jnp.float64):
    """u'' + 4u' + 400u = 0, u(0) = 1, u'(0) = 0, as the system y = (u, u')."""

    def field(t, y, args):
        return jnp.stack([y[1], -400.0 * y[0] - 4.0 * y[1]])

    return odefit.IVP(field, 0.0, 1.0, jnp.asarray([1.0, 0.0], dtype))


def _lotka_volterra_field(t, y, args):
    a, b, c, d = args
    return jnp.stack([a * y[0] - b * y[0] * y[1], -c * y[1] + d * y[0] * y[1]])


LV_ARGS = (1.5, 1.0, 3.0, 1.0)


def lotka_volterra(t1, dtype=jnp.float64, args=LV_ARGS):
    return odefit.IVP(
        _lotka_volterra_field, 0.0, t1, jnp.asarray([1.0, 1.0], dtype), args=args
    )


def van_der_pol(dtype=jnp.float64):
    def field(t, y, args):
        return jnp.stack([y[1], (1.0 - y[0] ** 2) * y[1] - y[0]])

    return odefit.IVP(field, 0.0, 10.0, jnp.asarray([2.0, 0.0], dtype))


def pendulum(dtype=jnp.float64):
    return odefit.SecondOrderIVP(
        lambda t, y, dy, args: -jnp.sin(y),
        0.0,
        10.0,
        jnp.asarray(1.0, dtype),
        jnp.asarray(0.0, dtype),
    )


def bratu(dtype=jnp.float64):
    """y'' + e^y = 0, y(0) = y(1) = 0 (Bratu's problem, lambda = 1)."""
    return odefit.BVP(
        lambda t, y, dy, args: -jnp.exp(y),
        0.0,
        1.0,
        jnp.asarray(0.0, dtype),
        jnp.asarray(0.0, dtype),
    )


# ---------------------------------------------------------------------------- cases


@dataclasses.dataclass
class Case:
    """A problem and the recipes run on it."""

    name: str
    make: Callable  # dtype -> problem
    width: int
    depth: int
    points: int  # fixed grid of the least-squares / L-BFGS stage
    adam: int  # warm-up steps
    lm: int = 0  # Levenberg–Marquardt steps (single network); 0: not run
    lbfgs: int = 0  # L-BFGS steps; 0: not run
    march: dict | None = None  # fit_marching recipe
    causal: float = 0.0  # epsilon of the causal Adam→LM run; 0: not run
    float32: bool = False  # also Adam→LM in float32
    inverse: bool = False
    bar: float | None = None  # the target relative L2
    bar_method: str = ""


CASES = [
    Case(
        "exponential decay",
        exponential_decay,
        16,
        2,
        64,
        300,
        lm=150,
        lbfgs=500,
        bar=1e-6,
        bar_method="Adam→LM",
    ),
    Case("logistic [0, 10]", logistic, 16, 2, 128, 500, lm=200, lbfgs=500),
    Case(
        "damped oscillator",
        damped_oscillator,
        16,
        2,
        256,
        500,
        lm=600,
        lbfgs=1000,
        float32=True,
        bar=1e-6,
        bar_method="Adam→LM",
    ),
    Case(
        "Lotka–Volterra [0, 10]",
        lambda d: lotka_volterra(10.0, d),
        24,
        3,
        256,
        3000,
        lm=400,
        causal=1.0,
        march=dict(max_change=1.0, width=20, depth=2, points=128, adam=300, lm=100),
        bar=1e-4,
        bar_method="marching Adam→LM",
    ),
    Case(
        "Lotka–Volterra [0, 30]",
        lambda d: lotka_volterra(30.0, d),
        20,
        2,
        128,
        300,
        march=dict(max_change=1.0, width=20, depth=2, points=128, adam=300, lm=100),
        bar=1e-3,
        bar_method="marching Adam→LM",
    ),
    Case(
        "Van der Pol μ=1 [0, 10]",
        van_der_pol,
        24,
        3,
        256,
        2000,
        lm=300,
        march=dict(max_change=1.0, width=20, depth=2, points=128, adam=300, lm=100),
        bar=1e-3,
        bar_method="marching Adam→LM",
    ),
    Case("pendulum [0, 10]", pendulum, 20, 2, 256, 1000, lm=300, lbfgs=1000),
    Case("Bratu BVP", bratu, 16, 2, 128, 300, lm=150, lbfgs=500),
    Case(
        "inverse Lotka–Volterra",
        lambda d: lotka_volterra(10.0, d),
        32,
        3,
        256,
        3000,
        lm=300,
        inverse=True,
    ),
]

QUICK = ("exponential decay", "damped oscillator", "Lotka–Volterra [0, 10]")


def adam_warmup(steps):
    return optax.adam(optax.exponential_decay(1e-2, steps, 1e-2))


# ------------------------------------------------------------------------- scoring


def score(problem, solution, reference_problem, ts):
    pred = jax.vmap(solution)(ts)
    ref = reference_problem.solve(ts)
    row = {
        "relative_l2": float(odefit.relative_l2(pred, ref)),
        "max_error": float(odefit.max_abs_error(pred, ref)),
    }
    try:
        est = odefit.error_estimate(problem, solution, ts)
        row["indicator"] = float(est.relative_l2)
        row["bound"] = float(est.relative_l2_bound)
    except RuntimeError as e:
        row["indicator"] = math.nan
        row["bound"] = math.nan
        row["indicator_failure"] = str(e)
    return row


def _inverse_setup(case, dtype, key):
    """Lotka–Volterra with all four parameters unknown (initial guesses 30% off),
    observed without noise at 41 times on [0, 10]."""
    truth = case.make(dtype)
    obs_ts = jnp.linspace(0.0, truth.t1, 41, dtype=dtype)
    data = odefit.Observations(obs_ts, truth.solve(obs_ts), weight=1.0)
    guess = tuple(
        odefit.Unknown(jnp.asarray(v * f, dtype), positive=True)
        for v, f in zip(LV_ARGS, (1.3, 0.7, 0.7, 1.3), strict=True)
    )
    problem = lotka_volterra(truth.t1, dtype, args=guess)
    return truth, problem, data


def run_single(case, method, *, dtype=jnp.float64, seconds=None, key):
    """One network over the whole interval."""
    truth = case.make(dtype)
    problem, data = truth, None
    if case.inverse:
        truth, problem, data = _inverse_setup(case, dtype, key)
    model = odefit.PINN(problem, width=case.width, depth=case.depth, key=key)
    fit_key = jr.fold_in(key, 1)
    grid = odefit.Grid(case.points)
    if method == "Adam→LM":
        stages = [
            (adam_warmup(case.adam), case.adam),
            (odefit.LevenbergMarquardt(points=case.points), case.lm),
        ]
    elif method == "causal Adam→LM":
        # Causal weighting in the warm-up and the first half of the polish (on
        # uniform points redrawn each step, no growing window), then plain LM.
        eps, chunks = case.causal, 32
        stages = [
            (
                odefit.CausalWeighting(
                    adam_warmup(case.adam), epsilon=eps, chunks=chunks
                ),
                case.adam,
                odefit.Uniform(256),
            ),
            (
                odefit.CausalWeighting(
                    odefit.LevenbergMarquardt(points=case.points),
                    epsilon=eps,
                    chunks=chunks,
                ),
                case.lm // 2,
            ),
            (odefit.LevenbergMarquardt(points=case.points), case.lm - case.lm // 2),
        ]
    elif method == "Adam→L-BFGS":
        stages = [
            (adam_warmup(case.adam), case.adam),
            (optax.lbfgs(), case.lbfgs, grid),
        ]
    elif method == "Adam (same time)":
        # Calibrate the step rate with chunks as long as the real run's (fit
        # wakes the host about 100 times per run), then give Adam the target wall
        # time, its compilation included.
        calibration = odefit.fit(
            problem,
            model,
            steps=600,
            chunk_size=150,
            observations=data,
            key=fit_key,
            progress=False,
        )
        compile_time = calibration.compile_time
        if not math.isfinite(compile_time):
            compile_time = 0.0
        per_step = max((calibration.wall_time - compile_time) / 600, 1e-6)
        # Aim at 80% of the time: the rest is topped up below, so that a machine
        # that slows down does not make Adam overrun by much.
        steps = max(1000, int(0.8 * (seconds - compile_time) / per_step))
        stages = [(None, steps)]
    else:
        raise ValueError(method)
    result = odefit.fit_stages(
        problem, model, stages, observations=data, key=fit_key, progress=False
    )
    steps, wall = result.steps, result.wall_time
    if method == "Adam (same time)" and wall < 0.95 * seconds:
        # The step rate of a shared machine drifts: if the run ended early, Adam
        # continues at the schedule's final learning rate until the time is used.
        compile_time = result.compile_time if math.isfinite(result.compile_time) else 0
        per_step = max((wall - compile_time) / steps, 1e-6)
        extra = int((seconds - wall) / per_step)
        if extra >= 100:
            result = odefit.fit(
                result.problem,
                result.model,
                steps=extra,
                optimizer=optax.adam(3e-5),
                collocation=odefit.Uniform(256),
                observations=data,
                key=jr.fold_in(fit_key, 2),
                progress=False,
            )
            steps, wall = steps + result.steps, wall + result.wall_time
    row = {"method": method, "steps": steps, "wall_time": wall}
    row["stop_reason"] = result.stop_reason
    ts = jnp.linspace(truth.t0, truth.t1, 2001, dtype=dtype)
    row.update(score(result.problem, result.model, truth, ts))
    if case.inverse:
        learned = np.asarray([float(v) for v in result.args])
        row["parameter_error"] = float(
            np.max(np.abs(learned - np.asarray(LV_ARGS)) / np.asarray(LV_ARGS))
        )
        row["parameters"] = learned.tolist()
    return row


def run_marching(case, *, dtype=jnp.float64, key):
    recipe = case.march
    problem = case.make(dtype)
    stages = [
        (adam_warmup(recipe["adam"]), recipe["adam"]),
        (odefit.LevenbergMarquardt(points=recipe["points"]), recipe["lm"]),
    ]
    result = odefit.fit_marching(
        problem,
        stages=stages,
        max_change=recipe["max_change"],
        width=recipe["width"],
        depth=recipe["depth"],
        key=key,
        progress=False,
    )
    row = {
        "method": "marching Adam→LM",
        "steps": result.steps,
        "wall_time": result.wall_time,
        "windows": len(result.windows),
        "stop_reason": result.stop_reason,
    }
    ts = jnp.linspace(problem.t0, problem.t1, 3001, dtype=dtype)
    row.update(score(problem, result.model, problem, ts))
    return row


def run_case(case, key, log):
    rows = []

    def record(row, dtype):
        row = {"problem": case.name, "dtype": jnp.dtype(dtype).name, **row}
        if case.bar is not None and row["method"] == case.bar_method:
            row["bar"] = case.bar
            if row["dtype"] == "float64":
                row["meets_bar"] = row["relative_l2"] <= case.bar
        rows.append(row)
        log(row)

    if case.lm:
        record(run_single(case, "Adam→LM", key=key), jnp.float64)
    if case.lbfgs:
        record(run_single(case, "Adam→L-BFGS", key=key), jnp.float64)
    if case.causal:
        record(run_single(case, "causal Adam→LM", key=key), jnp.float64)
    if case.march:
        record(run_marching(case, key=key), jnp.float64)
    if case.float32:
        record(run_single(case, "Adam→LM", dtype=jnp.float32, key=key), jnp.float32)
    budget = max(r["wall_time"] for r in rows if r["dtype"] == "float64")
    record(run_single(case, "Adam (same time)", seconds=budget, key=key), jnp.float64)
    return rows


# ---------------------------------------------------------------------------- output


def machine() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "devices": [str(d) for d in jax.devices()],
        "jax": jax.__version__,
        "odefit": odefit.__version__,
        "python": platform.python_version(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_average_start": os.getloadavg(),
    }


def _fmt(x, spec=".1e"):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return format(x, spec)


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"Measured {results['date']} on {m['cores']} CPU cores ({m['cpu']}), "
        f"{', '.join(m['devices'])}, JAX {m['jax']}, `OMP_NUM_THREADS="
        f"{m['omp_num_threads']}`; load average (1/5/15 min) "
        f"{'/'.join(f'{x:.1f}' for x in m['load_average_start'])} at the start and "
        f"{'/'.join(f'{x:.1f}' for x in results['load_average_end'])} at the end "
        "(the machine was shared; wall times are pessimistic). "
        f"Command: `{results['command']}`.",
        "",
        "| problem | method | dtype | rel. L2 | max error | indicator | "
        "wall [s] | steps | bar |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        bar = ""
        if "meets_bar" in r:
            bar = f"≤ {r['bar']:.0e} " + ("✓" if r["meets_bar"] else "✗")
        method = r["method"]
        if "windows" in r:
            method += f" ({r['windows']} windows)"
        if "parameter_error" in r:
            method += f"; params ±{r['parameter_error']:.1e}"
        lines.append(
            f"| {r['problem']} | {method} | {r['dtype']} | "
            f"{_fmt(r['relative_l2'])} | {_fmt(r['max_error'])} | "
            f"{_fmt(r.get('indicator'))} | {r['wall_time']:.1f} | {r['steps']} | "
            f"{bar} |"
        )
    return "\n".join(lines)


def write_readme(text: str) -> None:
    path = HERE / "README.md"
    start, end = "<!-- accuracy:start -->", "<!-- accuracy:end -->"
    block = f"{start}\n{text}\n{end}"
    if path.exists():
        old = path.read_text()
        if start in old and end in old:
            new = old[: old.index(start)] + block + old[old.index(end) + len(end) :]
        else:
            new = old.rstrip() + "\n\n## Accuracy\n\n" + block + "\n"
    else:
        new = "# Benchmarks\n\n## Accuracy\n\n" + block + "\n"
    path.write_text(new)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"only {QUICK}")
    parser.add_argument(
        "--only", default=None, help="comma-separated problem-name prefixes"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--readme", action="store_true", help="update README.md")
    parser.add_argument("--output", default=None, help="the JSON file to write")
    args = parser.parse_args(argv)

    cases = CASES
    if args.quick:
        cases = [c for c in cases if c.name in QUICK]
    if args.only:
        prefixes = [p.strip().lower() for p in args.only.split(",")]
        cases = [
            c for c in cases if any(c.name.lower().startswith(p) for p in prefixes)
        ]
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "command": "python benchmarks/accuracy.py"
        + (" --quick" if args.quick else "")
        + (f" --only {args.only}" if args.only else ""),
        "machine": machine(),
        "rows": [],
    }
    from _meta import complete  # benchmarks/_meta.py, beside this script

    results = complete(results, results["command"], repeats=1)

    def log(row):
        extra = f" ({row['windows']} windows)" if "windows" in row else ""
        print(
            f"{row['problem']:<26} {row['method'] + extra:<30} {row['dtype']:<8} "
            f"rel L2 {row['relative_l2']:.2e}  max {row['max_error']:.2e}  "
            f"indicator {row.get('indicator', math.nan):.2e}  "
            f"{row['wall_time']:6.1f} s  {row['steps']} steps  {row['stop_reason']}",
            flush=True,
        )

    key = jr.key(args.seed)
    start = time.perf_counter()
    for i, case in enumerate(cases):
        results["rows"] += run_case(case, jr.fold_in(key, i), log)
    results["total_time"] = time.perf_counter() - start
    results["load_average_end"] = os.getloadavg()
    text = markdown(results)
    print()
    print(text)
    print(f"\ntotal {results['total_time']:.0f} s")
    name = "accuracy_quick.json" if args.quick or args.only else "accuracy.json"
    output = Path(args.output) if args.output else HERE / "results" / name
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2, default=str))
    if args.readme:
        write_readme(text)


if __name__ == "__main__":
    main()
