"""The tolerance suite: how close odefit gets on 24 ODEs (`ode_suite.py`: scalar
IVPs, systems, second order, BVPs, long horizons, oscillatory, blow-up-like growth
and inverse problems), scored against exact solutions or tight diffrax references.

Two modes:

- `--mode baseline`: each problem fit as a new user would, with `odefit.fit`'s
  defaults: `fit(problem, PINN(problem, key=k), steps=20000, key=k2)` (with the
  observations for an inverse problem).
- `--mode tol`: each problem through one call,
  `odefit.fit_to_tolerance(problem, tol=TOL, key=k, time_budget=180.0,
  observations=..., progress=False)`.

Per problem: the true relative L2 error against the reference on 1000 times, the
error estimate (`odefit.error_estimate(...).relative_l2` for the baseline; the
result's own `.error` in tol mode: the estimate, or with observations the
larger of it and the data misfit) and the ratio estimate/true,
whether the true error meets the tolerance, the wall time (compilation included,
scoring excluded), the identified parameters (inverse problems), and in tol mode
what it reported (`.met`, `.stop_reason`, `.choices`). The summary: the fraction
meeting the tolerance, the median and max wall time, the extreme estimate/true
factors. The JSON file is rewritten after every problem, so that a partial run
leaves its rows.

    python benchmarks/tolerance_suite.py --mode baseline --precision float64
    python benchmarks/tolerance_suite.py --mode tol --precision float64 --tol 1e-6
    python benchmarks/tolerance_suite.py --mode tol --precision float32 --tol 1e-3
    python benchmarks/tolerance_suite.py ... --problems decay,bratu --out PATH
    python benchmarks/tolerance_suite.py --mode tol --precision float32 --tol 1e-3 \
        --problems harmonic,oscillator_bvp --update   # replace those rows only
    python benchmarks/tolerance_suite.py --readme   # tables from results/ into
                                                    # benchmarks/README.md

Each precision runs in its own process: float64 turns on `jax_enable_x64` before
any problem is built.
"""

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
START, END = "<!-- tolerance_suite:start -->", "<!-- tolerance_suite:end -->"


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("baseline", "tol"), default="baseline")
    parser.add_argument("--precision", choices=("float64", "float32"), default=None)
    parser.add_argument("--tol", type=float, default=None)
    parser.add_argument("--problems", default=None, help="comma-separated names")
    parser.add_argument("--steps", type=int, default=20_000, help="baseline steps")
    parser.add_argument("--time-budget", type=float, default=180.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--update",
        action="store_true",
        help="rerun --problems and replace their rows in the existing --out file "
        "(recorded under 'updates'), keeping the other rows",
    )
    parser.add_argument(
        "--readme", action="store_true", help="only rewrite the README section"
    )
    args = parser.parse_args(argv)
    if args.precision is None:
        args.precision = "float64"
    if args.tol is None:
        args.tol = 1e-6 if args.precision == "float64" else 1e-3
    return args


def _jsonable(x):
    """Choices and arguments as JSON: arrays to lists, objects to their repr."""
    import numpy as np

    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, bool | int | str) or x is None:
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else str(x)
    try:
        a = np.asarray(x)
        if a.dtype.kind in "fiub":
            return _jsonable(a.tolist())
    except Exception:
        pass
    return repr(x)


def _versions():
    import diffrax
    import equinox
    import jax
    import optax

    import odefit

    return {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": getattr(jax.lib, "__version__", None)
        or __import__("jaxlib").__version__,
        "equinox": equinox.__version__,
        "optax": optax.__version__,
        "diffrax": diffrax.__version__,
        "odefit": odefit.__version__,
    }


def _git_commit():
    import subprocess

    try:
        return subprocess.run(
            ["git", "-C", str(HERE), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except Exception:
        return None


def run_problem(entry, args, dtype, key):
    import jax
    import jax.numpy as jnp
    import jax.random as jr

    import odefit

    problem = entry.build(dtype)
    data = entry.observations(dtype) if entry.inverse else None
    k, k2 = jr.split(key)
    row = {"problem": entry.name, "kind": entry.kind}
    start = time.perf_counter()
    if args.mode == "baseline":
        result = odefit.fit(
            problem,
            odefit.PINN(problem, key=k),
            steps=args.steps,
            observations=data,
            key=k2,
            progress=False,
        )
    else:
        result = odefit.fit_to_tolerance(
            problem,
            tol=args.tol,
            key=k,
            time_budget=args.time_budget,
            observations=data,
            progress=False,
        )
    jax.block_until_ready(jax.tree.leaves(eqx_filter(result.model)))
    row["wall_time"] = time.perf_counter() - start
    row["reported_wall_time"] = float(getattr(result, "wall_time", math.nan))
    row["stop_reason"] = str(result.stop_reason)

    truth = entry.true_problem(dtype)
    ts = jnp.linspace(truth.t0, truth.t1, 1000, dtype=dtype)
    pred = jax.vmap(result.model)(ts)
    ref = entry.reference(ts)
    error = float(odefit.relative_l2(pred, ref))
    row["relative_l2"] = error
    row["max_error"] = float(odefit.max_abs_error(pred, ref))
    if args.mode == "baseline":
        try:
            est = odefit.error_estimate(result.problem, result.model, ts)
            row["estimate"] = float(est.relative_l2)
        except Exception as e:  # an estimate that fails is recorded, not fatal
            row["estimate"] = math.nan
            row["estimate_failure"] = f"{type(e).__name__}: {e}"[:300]
        row["steps"] = int(result.steps)
    else:
        # The figure the call compares with `tol` (with observations it also
        # weighs the data misfit); `estimate.relative_l2` before it existed.
        error = getattr(result, "error", None)
        if error is None:
            estimate = result.estimate
            error = math.nan if estimate is None else float(estimate.relative_l2)
        row["estimate"] = float(error)
        row["reported_met"] = bool(result.met)
        row["choices"] = _jsonable(result.choices)
    row["ratio"] = (
        row["estimate"] / error
        if error > 0 and math.isfinite(row["estimate"])
        else math.nan
    )
    row["met"] = error <= args.tol
    if entry.inverse:
        found = [float(v) for v in jax.tree.leaves(result.args)]
        row["parameters"] = found
        row["true_parameters"] = list(entry.true_args)
        row["parameter_error"] = max(
            abs(f - t) / abs(t) for f, t in zip(found, entry.true_args, strict=True)
        )
    return row


def eqx_filter(model):
    import equinox as eqx

    return eqx.filter(model, eqx.is_array)


def summary(rows, tol):
    import numpy as np

    done = [r for r in rows if "relative_l2" in r]
    if not done:
        return {}
    walls = np.array([r["wall_time"] for r in done])
    ratios = np.array(
        [r["ratio"] for r in done if isinstance(r["ratio"], float)], dtype=float
    )
    ratios = ratios[np.isfinite(ratios)]
    # A problem that crashed counts as not meeting the tolerance.
    out = {
        "problems": len(rows),
        "met": sum(r["met"] for r in done),
        "fraction_met": sum(r["met"] for r in done) / len(rows),
        "median_wall_time": float(np.median(walls)),
        "max_wall_time": float(np.max(walls)),
        "max_estimate_factor": float(ratios.max()) if ratios.size else math.nan,
        "min_estimate_factor": float(ratios.min()) if ratios.size else math.nan,
        "failed": [r["problem"] for r in rows if not r.get("met", False)],
    }
    if any("reported_met" in r for r in done):
        out["reported_met"] = sum(r.get("reported_met", False) for r in done)
        out["false_claims"] = [
            r["problem"] for r in done if r.get("reported_met") and not r["met"]
        ]
    errors = [r for r in rows if "error" in r]
    if errors:
        out["crashed"] = [r["problem"] for r in errors]
    return out


def main(argv=None):
    args = _parse(argv)
    if args.readme:
        write_readme()
        return
    import jax

    if args.precision == "float64":
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import jax.random as jr

    sys.path.insert(0, str(HERE))
    import ode_suite

    dtype = jnp.float64 if args.precision == "float64" else jnp.float32
    entries = ode_suite.PROBLEMS
    if args.problems:
        names = [n.strip() for n in args.problems.split(",")]
        unknown = [n for n in names if n not in ode_suite.BY_NAME]
        if unknown:
            raise SystemExit(
                f"unknown problems {unknown}; have {list(ode_suite.BY_NAME)}"
            )
        entries = [ode_suite.BY_NAME[n] for n in names]
    if args.out:
        out = Path(args.out)
    else:
        stem = "tolerance_suite" + ("_baseline" if args.mode == "baseline" else "")
        out = RESULTS / f"{stem}_{args.precision}.json"
    results = {
        "command": "python " + " ".join([sys.argv[0], *sys.argv[1:]])
        if argv is None
        else "python benchmarks/tolerance_suite.py " + " ".join(argv),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "mode": args.mode,
        "precision": args.precision,
        "tol": args.tol,
        "steps": args.steps if args.mode == "baseline" else None,
        "time_budget": args.time_budget if args.mode == "tol" else None,
        "seed": args.seed,
        "repeats": 1,
        "reference": "exact solution where known, else problem.solve (Tsit5, "
        "rtol 1e-11 / atol 1e-12 in float64, 1e-6 / 1e-7 in float32), checked "
        "against Dopri5 at 1e-13 / 1e-14 by tests/test_ode_suite.py; 1000 times",
        "machine": {
            "platform": platform.platform(),
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "devices": [str(d) for d in jax.devices()],
        },
        "versions": _versions(),
        "git_commit": _git_commit(),
        "load_average_start": os.getloadavg(),
        "rows": [],
    }
    if args.update:
        if not out.exists():
            raise SystemExit(f"--update: {out} does not exist")
        run = {
            k: results[k]
            for k in ("command", "date", "versions", "git_commit", "load_average_start")
        }
        run["problems"] = [e.name for e in entries]
        results = json.loads(out.read_text())
        if (results["mode"], results["precision"], results["tol"]) != (
            args.mode,
            args.precision,
            args.tol,
        ):
            raise SystemExit(f"--update: {out} holds another mode, precision or tol")
        results.setdefault("updates", []).append(run)
        # Rows are replaced in place, so the table keeps the suite's order.
        slots = {r["problem"]: i for i, r in enumerate(results["rows"])}
    key = jr.key(args.seed)
    index = {p.name: i for i, p in enumerate(ode_suite.PROBLEMS)}
    for entry in entries:
        try:
            row = run_problem(entry, args, dtype, jr.fold_in(key, index[entry.name]))
        except Exception as e:  # one problem's crash must not lose the others
            row = {
                "problem": entry.name,
                "kind": entry.kind,
                "error": f"{type(e).__name__}: {e}"[:1000],
            }
        row["source"] = entry.source
        if args.update and entry.name in slots:
            results["rows"][slots[entry.name]] = row
        else:
            results["rows"].append(row)
        if args.update:
            results["updates"][-1]["load_average_end"] = os.getloadavg()
        else:
            results["load_average_end"] = os.getloadavg()
        results["summary"] = summary(results["rows"], args.tol)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(_jsonable(results), indent=1))
        if "error" in row:
            print(f"{entry.name:<24} ERROR {row['error'][:200]}", flush=True)
        else:
            extra = ""
            if "parameters" in row:
                extra = f"  params {[f'{p:.4g}' for p in row['parameters']]}"
            print(
                f"{entry.name:<24} rel L2 {row['relative_l2']:.2e}  est "
                f"{row['estimate']:.2e}  {row['wall_time']:6.1f} s  "
                f"{'met' if row['met'] else 'MISSED'}  {row['stop_reason'][:60]}"
                f"{extra}",
                flush=True,
            )
    print(json.dumps(results["summary"], indent=1))


# ------------------------------------------------------------------------- README


def _fmt(x, spec=".1e"):
    if x is None or isinstance(x, str):
        return "—"
    if isinstance(x, float) and not math.isfinite(x):
        return "—"
    return format(x, spec)


def _brief_choices(choices) -> str:
    """The attempts of a tol-mode run, one short phrase each."""
    if not choices:
        return ""
    if isinstance(choices, dict):
        choices = [choices]
    parts = []
    for c in choices:
        if not isinstance(c, dict):
            parts.append(str(c)[:60])
            continue
        net = f"{c.get('width', '?')}x{c.get('depth', 2)}"
        what = f"{c.get('attempt', '?')} {net}"
        if "windows" in c:
            what += f", {c['windows']} windows"
        elif "points" in c:
            what += f", {c['points']} pts"
        parts.append(
            f"{what} → {_fmt(c.get('estimate'))} ({c.get('seconds', 0):.0f} s)"
        )
    return "; ".join(parts).replace("|", "/")


def markdown(results) -> str:
    m, s = results["machine"], summary(results["rows"], results["tol"])
    v = results["versions"]
    tol = results["tol"]
    head = (
        f"**{results['mode']} {results['precision']}** (tolerance {tol:g}): "
        f"`{results['command']}`, {results['date']}, {m['cores']} CPU cores "
        f"({', '.join(m['devices'])}), JAX {v['jax']}, load average "
        f"{'/'.join(f'{x:.1f}' for x in results['load_average_start'])} at the "
        f"start and "
        f"{'/'.join(f'{x:.1f}' for x in results.get('load_average_end', []))} at "
        f"the end, 1 repeat."
    )
    if s:
        head += (
            f" **{s['met']}/{s['problems']} meet the tolerance**; wall time median "
            f"{s['median_wall_time']:.0f} s, max {s['max_wall_time']:.0f} s; "
            f"estimate/true factor {_fmt(s['min_estimate_factor'], '.2g')}–"
            f"{_fmt(s['max_estimate_factor'], '.2g')}."
        )
        if s.get("crashed"):
            head += f" Crashed: {', '.join(s['crashed'])}."
        if "false_claims" in s:
            head += (
                f" Reported met: {s['reported_met']}; reported met but not: "
                f"{', '.join(s['false_claims']) or 'none'}."
            )
    for u in results.get("updates", []):
        head += (
            f" Rerun later ({u['date']}, `{u['command']}`, load "
            f"{'/'.join(f'{x:.1f}' for x in u['load_average_start'])}): "
            f"{', '.join(u['problems'])}."
        )
    tol_mode = results["mode"] == "tol"
    cols = "| problem | kind | rel. L2 | estimate | est./true | met | wall [s] |"
    cols += " stop | choices / parameters |" if tol_mode else " parameters |"
    lines = [head, "", cols, "|" + "---|" * (cols.count("|") - 1)]
    for r in results["rows"]:
        if "error" in r:
            lines.append(
                f"| {r['problem']} | {r['kind']} | crashed: "
                f"{r['error'][:80].replace('|', '/')} |" + " |" * (cols.count("|") - 4)
            )
            continue
        params = ""
        if "parameters" in r:
            params = (
                "found "
                + ", ".join(f"{p:.4g}" for p in r["parameters"])
                + " (true "
                + ", ".join(f"{p:g}" for p in r["true_parameters"])
                + f"; max rel. error {r['parameter_error']:.1e})"
            )
        cells = [
            r["problem"],
            r["kind"],
            _fmt(r["relative_l2"]),
            _fmt(r["estimate"]),
            _fmt(r["ratio"], ".2g"),
            "✓" if r["met"] else "✗",
            f"{r['wall_time']:.0f}",
        ]
        if tol_mode:
            brief = _brief_choices(r.get("choices"))
            claimed = "reported met" if r.get("reported_met") else "reported not met"
            cells += [
                f"{claimed}; {r['stop_reason'][:60]}".replace("|", "/"),
                "; ".join(x for x in (brief, params) if x),
            ]
        else:
            cells.append(params)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_readme():
    files = [
        RESULTS / "tolerance_suite_baseline_float64.json",
        RESULTS / "tolerance_suite_float64.json",
        RESULTS / "tolerance_suite_float32.json",
    ]
    parts = []
    for f in files:
        if f.exists():
            results = json.loads(f.read_text())
            # The summary is derived from the rows; keep the file's in step with
            # this function (a crashed problem counts as not met).
            fresh = summary(results["rows"], results["tol"])
            if results.get("summary") != fresh:
                results["summary"] = fresh
                f.write_text(json.dumps(results, indent=1))
            parts.append(f"From `results/{f.name}`:\n\n" + markdown(results))
    text = "\n\n".join(parts)
    path = HERE / "README.md"
    old = path.read_text()
    block = f"{START}\n{text}\n{END}"
    if START in old and END in old:
        new = old[: old.index(START)] + block + old[old.index(END) + len(END) :]
    else:
        new = old.rstrip() + "\n\n" + README_INTRO + "\n" + block + "\n"
    path.write_text(new)


README_INTRO = """## Tolerance suite

`python benchmarks/tolerance_suite.py` fits 24 ODEs (`ode_suite.py`: scalar IVPs,
systems, second order, BVPs, long horizons, oscillatory, blow-up-like growth, and
three inverse problems with noise-free observations at seeded random times; each
problem cites its source) and scores each against its exact solution or a diffrax
reference (checked against an independent Dopri5 solve to 1e-8 by
`tests/test_ode_suite.py`) on 1000 times. **baseline**: `odefit.fit` with its
defaults, 20,000 steps, as a new user would call it. **tol**:
`odefit.fit_to_tolerance(problem, tol=..., time_budget=180)`. *met* is the true
error against the reference, not the call's own verdict; *estimate* is the
residual-based error estimate (`error_estimate` for the baseline, the result's
`.estimate` in tol mode). Wall time includes compilation. One repeat per problem
on a shared 2-core CPU: wall times are indicative. `--readme` regenerates the
tables below from `results/tolerance_suite*.json`; `--problems A,B --update`
reruns some problems and replaces their rows (the file records the rerun).
"""


if __name__ == "__main__":
    main()
