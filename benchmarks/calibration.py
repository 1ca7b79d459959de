"""Calibration of `odefit.parameter_intervals` against the classical intervals.

Lotka-Volterra, x' = a x - b x z, z' = -c z + d x z, (x, z)(0) = (1, 1) on [0, 5],
true rates (1.5, 1, 3, 1). Each synthetic data set: 40 times, both components
observed, additive Gaussian noise of standard deviation 2% of the trajectory's
root-mean-square value (one noise level for all values, the model both interval
methods assume). For every data set (seed):

- **PINN**: the four rates as `odefit.Unknown(0.5 * true, positive=True)`, a PINN
  (width 24, depth 2, float64), Adam then Levenberg-Marquardt on a fixed grid, the
  residual weighted 100 times the data so that the network is held to the ODE;
  all data sets fit as one `odefit.fit_ensemble` per stage. Then
  `odefit.parameter_intervals` on each member (`result[i]`).
- **classical**: `odefit.classical_intervals`, nonlinear least squares on the
  diffrax solve (optimistix Levenberg-Marquardt), from the same half-value guesses.

`fit_ensemble` takes one `observations` shared by every member; each member's data
set is carried in its problem's `args` (an array entry the vector field ignores)
and enters the loss through a user term identical to the data term.

Reported: the empirical coverage of the nominal 95% intervals of each rate for
both methods (with its binomial standard error), the median ratio of the PINN
interval widths to the classical ones, and the times.

    python benchmarks/calibration.py [--seeds 200] [--adam 2000] [--lm 80]
"""

import argparse
import json
import math
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402
from _meta import complete, load_average  # noqa: E402

import odefit  # noqa: E402
from odefit._ensemble import _member  # noqa: E402

HERE = Path(__file__).resolve().parent
TRUE = (1.5, 1.0, 3.0, 1.0)
NAMES = ("a", "b", "c", "d")
T1, OBSERVATIONS, NOISE = 5.0, 40, 0.02
WEIGHTS = {"residual": 100.0}


def lotka_volterra(t, y, args):
    a, b, c, d = args[:4]
    x, z = y
    return jnp.stack([a * x - b * x * z, -c * z + d * x * z])


def data_term(model, problem, args, ts):
    # The member's own observations, carried in `args[4]`: the same residual as
    # `Observations` would give.
    return model.predict(jnp.linspace(0.0, T1, OBSERVATIONS)) - args[4]


def datasets(seeds: int):
    truth = odefit.IVP(lotka_volterra, 0.0, T1, jnp.array([1.0, 1.0]), args=TRUE)
    ts = jnp.linspace(0.0, T1, OBSERVATIONS)
    clean = truth.solve(ts)
    sigma = NOISE * float(jnp.sqrt(jnp.mean(clean**2)))
    noise = jr.normal(jr.key(2024), (seeds,) + clean.shape)
    return ts, np.asarray(clean + sigma * noise), sigma


def main(seeds=200, adam=2000, lm=80, width=24, depth=2, points=128, quick=False):
    start_load = load_average()
    ts, ys, sigma = datasets(seeds)
    y0 = jnp.array([1.0, 1.0])
    guess = tuple(odefit.Unknown(0.5 * v, positive=True) for v in TRUE)
    problems = [
        odefit.IVP(lotka_volterra, 0.0, T1, y0, args=guess + (jnp.asarray(y),))
        for y in ys
    ]
    models = eqx.filter_vmap(
        lambda k: odefit.PINN(problems[0], width=width, depth=depth, key=k)
    )(jr.split(jr.key(0), seeds))
    terms = {"observations": data_term}

    clock = time.perf_counter()
    warm = odefit.fit_ensemble(
        problems,
        models,
        steps=adam,
        terms=terms,
        key=jr.key(1),
        progress=False,
    )
    adam_time = time.perf_counter() - clock
    print(f"Adam: {adam_time:.0f} s", flush=True)
    clock = time.perf_counter()
    fits = odefit.fit_ensemble(
        [_member(warm.problem, i) for i in range(seeds)],
        warm.model,
        steps=lm,
        optimizer=odefit.LevenbergMarquardt(points=points),
        terms=terms,
        weights=WEIGHTS,
        key=jr.key(2),
        progress=False,
        # All members in one vmap: with the CPU default (members in batches,
        # `jax.lax.map`) this stage stopped making progress twice on this machine.
        batch_size=None,
    )
    lm_time = time.perf_counter() - clock
    print(f"Levenberg-Marquardt: {lm_time:.0f} s", flush=True)

    pinn, classical, failures = [], [], []
    interval_time = classical_time = 0.0
    truth = np.asarray(TRUE)
    for i in range(seeds):
        data = odefit.Observations(ts, ys[i])
        member = fits[i]
        clock = time.perf_counter()
        try:
            p = odefit.parameter_intervals(
                member, data, collocation=odefit.Grid(points), weights=WEIGHTS
            )
        except ValueError as e:
            failures.append((i, "pinn", str(e)))
            p = None
        interval_time += time.perf_counter() - clock
        clock = time.perf_counter()
        # From the PINN's estimates: from half the true values the classical fit
        # often fails (the Lotka-Volterra misfit has other minima).
        start = odefit.IVP(lotka_volterra, 0.0, T1, y0, args=member.problem.args[:4])
        try:
            c = odefit.classical_intervals(start, data)
        except (RuntimeError, ValueError) as e:
            failures.append((i, "classical", str(e)))
            c = None
        classical_time += time.perf_counter() - clock
        if i % 20 == 0:
            print(f"intervals {i}/{seeds}", flush=True)
        if p is None or c is None:
            continue
        pinn.append(
            dict(
                estimate=np.asarray(p.estimate),
                lower=np.asarray(p.lower),
                upper=np.asarray(p.upper),
                covers=p.covers(truth),
                noise=float(p.noise),
                gamma=p.effective_parameters,
                stop=member.stop_reason,
            )
        )
        classical.append(
            dict(
                estimate=np.asarray(c.estimate),
                lower=np.asarray(c.lower),
                upper=np.asarray(c.upper),
                covers=c.covers(truth),
                se=np.asarray(c.standard_error),
                noise=float(c.noise),
            )
        )

    used = len(pinn)

    def stack(rows, key):
        return np.stack([r[key] for r in rows])

    p_cover = stack(pinn, "covers").mean(axis=0)
    c_cover = stack(classical, "covers").mean(axis=0)
    widths = (stack(pinn, "upper") - stack(pinn, "lower")) / (
        stack(classical, "upper") - stack(classical, "lower")
    )
    p_est, c_est = stack(pinn, "estimate"), stack(classical, "estimate")
    c_se = stack(classical, "se")
    per = {}
    for k, name in enumerate(NAMES):
        per[name] = {
            "true": TRUE[k],
            "coverage_pinn": float(p_cover[k]),
            "coverage_classical": float(c_cover[k]),
            "coverage_standard_error": math.sqrt(0.95 * 0.05 / used),
            "width_ratio_median": float(np.median(widths[:, k])),
            "width_ratio_range": [
                float(np.min(widths[:, k])),
                float(np.max(widths[:, k])),
            ],
            "rmse_pinn": float(np.sqrt(np.mean((p_est[:, k] - TRUE[k]) ** 2))),
            "rmse_classical": float(np.sqrt(np.mean((c_est[:, k] - TRUE[k]) ** 2))),
            "median_pinn_minus_classical_in_classical_se": float(
                np.median(np.abs(p_est[:, k] - c_est[:, k]) / c_se[:, k])
            ),
        }
    bars = {
        "coverage_in_0.90_0.99": bool(
            all(0.90 <= per[n]["coverage_pinn"] <= 0.99 for n in NAMES)
        ),
        "width_within_1.5x_classical": bool(
            all(1 / 1.5 <= per[n]["width_ratio_median"] <= 1.5 for n in NAMES)
        ),
    }
    out = {
        "problem": (
            f"Lotka-Volterra on [0, {T1}], {OBSERVATIONS} observations of (x, z), "
            f"additive noise {100 * NOISE:g}% of the RMS value (sigma {sigma:.4g}), "
            "rates (1.5, 1, 3, 1) from half their values, float64"
        ),
        "pinn": (
            f"PINN width {width} depth {depth}; {adam} Adam steps, then {lm} "
            f"Levenberg-Marquardt steps on Grid({points}), residual weight 100; "
            "odefit.parameter_intervals (prior_precision 1)"
        ),
        "classical": "odefit.classical_intervals (Tsit5 + optimistix LM)",
        "level": 0.95,
        "seeds": seeds,
        "seeds_used": used,
        "failures": failures,
        "stop_reasons": sorted({r["stop"].split(":")[0] for r in pinn}),
        "parameters": per,
        "median_noise_estimate": {
            "pinn": float(np.median([r["noise"] for r in pinn])),
            "classical": float(np.median([r["noise"] for r in classical])),
            "true": sigma,
        },
        "median_effective_parameters": float(np.median([r["gamma"] for r in pinn])),
        "bars_met": bars,
        "time_s": {
            "fit_ensemble_adam": adam_time,
            "fit_ensemble_lm": lm_time,
            "parameter_intervals_total": interval_time,
            "classical_intervals_total": classical_time,
        },
        "load_average_end": load_average(),
        "load_average_start": start_load,
        "notes": "times on a shared 2-core machine; see the load averages",
    }
    command = (
        "python benchmarks/calibration.py"
        + ("" if seeds == 200 else f" --seeds {seeds}")
        + ("" if adam == 2000 else f" --adam {adam}")
        + ("" if lm == 80 else f" --lm {lm}")
    )
    out = complete(out, command, repeats=1)
    print(
        json.dumps(
            {k: out[k] for k in ("parameters", "bars_met", "time_s", "failures")},
            indent=1,
        )
    )
    if not quick:
        path = HERE / "results" / "calibration.json"
        path.write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {path}")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--adam", type=int, default=2000)
    parser.add_argument("--lm", type=int, default=80)
    parser.add_argument("--quick", action="store_true", help="do not write results")
    args = parser.parse_args()
    main(seeds=args.seeds, adam=args.adam, lm=args.lm, quick=args.quick)
