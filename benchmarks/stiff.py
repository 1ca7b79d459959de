"""Stiff and many-scale ODEs fit by a PINN, without reducing the equations and
without data: Robertson on [0, 1e5], Van der Pol with mu = 100 and mu = 1000 over
two periods, HIRES on [0, 321.8122]. float64 throughout.

For each problem:

- **plain default**: `odefit.fit` with its defaults (Adam, points redrawn each
  step) on `odefit.PINN(problem, key=...)`, 5000 steps;
- **stiff marching (full)**: `odefit.fit_marching(problem, stiff=True,
  tolerance=1e-7, ...)`: windows planned from an implicit solve, sized to the
  local time scale, each window's `odefit.PINN(..., stiff=True)` (implicit-solve
  scales that keep tiny species, residual in relaxation units), an Adam warm-up
  then float64 Levenberg-Marquardt, and every window's local error checked
  against a classical solve from the window's own start (rejected windows are
  halved, windows well within it doubled);
- **planned windows only**: the same without `tolerance` (no local error
  check);

and on Robertson (the headline) the ablation, each row the full method less one
piece:

- **equal windows**: the same number of planned windows, of equal length;
- **plain PINN in the windows**: stiff windows, `odefit.PINN` without `stiff`;
- **scales only**: stiff windows and scales, residual in the plain units;
- **one planned window**: `stiff=True` model, one planned window (the local
  error control then finds every window itself).

Errors are relative L2 per component against the reference (`problem.solve`:
Kvaerno5 after Tsit5 runs out of steps; checked against Radau IIA at 1e-13 in
tests/test_stiff.py) on 1000 times, log-spaced for Robertson and HIRES, uniform
for Van der Pol. Every run is bounded in wall time (`--budget`, default 600 s);
the machine's load is recorded: wall times on a shared machine are inflated.

    python benchmarks/stiff.py                 # everything
    python benchmarks/stiff.py --only robertson
    python benchmarks/stiff.py --only hires --no-ablation
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

import odefit  # noqa: E402
from odefit._problems import stiff_scale  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _meta import complete, load_average  # noqa: E402
from stiff_problems import (  # noqa: E402
    problems,
)

RESULTS = Path(__file__).resolve().parent / "results" / "stiff.json"


def stages(adam=300, lm=100, points=128):
    schedule = optax.exponential_decay(1e-2, adam, 1e-2)
    return [
        (optax.adam(schedule), adam),
        (odefit.LevenbergMarquardt(points=points), lm),
    ]


class Budget:
    def __init__(self, seconds):
        self.start = time.perf_counter()
        self.seconds = seconds

    def __call__(self, info) -> bool:
        return time.perf_counter() - self.start > self.seconds


def score(solution, ts, reference):
    pred = jax.vmap(solution)(ts)
    return [
        float(odefit.relative_l2(pred[:, i], reference[:, i]))
        for i in range(reference.shape[1])
    ]


def run_plain(problem, ts, reference, budget):
    tic = time.perf_counter()
    model = odefit.PINN(problem, key=jax.random.key(0))
    result = odefit.fit(
        problem,
        model,
        steps=5000,
        key=jax.random.key(1),
        progress=False,
        callback=Budget(budget),
    )
    wall = time.perf_counter() - tic
    return dict(
        errors=score(result.model, ts, reference),
        wall_time=round(wall, 1),
        windows=1,
        stop_reason=result.stop_reason,
    )


def run_marching(problem, ts, reference, budget, *, width=16, **options):
    tic = time.perf_counter()
    result = odefit.fit_marching(
        problem,
        stages=stages(),
        width=width,
        key=jax.random.key(0),
        progress=False,
        callback=Budget(budget),
        **options,
    )
    wall = time.perf_counter() - tic
    errors = score(result.model, ts, reference)
    # 100 of the scoring times, for the docs' plots: the reference and the
    # pointwise error of each component relative to its peak.
    every = max(1, ts.size // 100)
    pred = jax.vmap(result.model)(ts[::every])
    peak = jnp.max(jnp.abs(reference), axis=0)
    curves = dict(
        t=ts[::every].tolist(),
        reference=reference[::every].T.tolist(),
        error=(jnp.abs(pred - reference[::every]) / peak).T.tolist(),
        breakpoints=list(result.breakpoints),
    )
    if result.stop_reason != "completed":
        # The solution covers the fitted windows only: score it where it exists.
        errors = None
    return dict(
        errors=errors,
        wall_time=round(wall, 1),
        windows=len(result.breakpoints) - 1,
        refits=result.refits,
        largest_local_error=max(result.local_errors, default=None),
        stop_reason=result.stop_reason[:160],
        curves=curves,
    )


def ablation(problem, ts, reference, budget, planned_windows, tolerance):
    def plain_pinn(q, key):
        return odefit.PINN(q, width=16, depth=2, key=key)

    def scales_only(q, key):
        return odefit.PINN(q, width=16, depth=2, scale=stiff_scale(q), key=key)

    common = dict(stiff=True, tolerance=tolerance)
    rows = {}
    rows["equal windows"] = run_marching(
        problem, ts, reference, budget, windows=planned_windows, **common
    )
    rows["plain PINN in the windows"] = run_marching(
        problem, ts, reference, budget, model=plain_pinn, **common
    )
    rows["scales only (no relaxation units)"] = run_marching(
        problem, ts, reference, budget, model=scales_only, **common
    )
    rows["one planned window"] = run_marching(
        problem, ts, reference, budget, windows=1, **common
    )
    return rows


BARS = {
    "robertson": "Robertson, [0, 1e5]",
    "van_der_pol_100": "Van der Pol mu = 100, two periods",
    "hires": "HIRES, [0, 321.8122]",
    "van_der_pol_1000": "Van der Pol mu = 1000, two periods",
}


def _brief(row) -> dict:
    return {k: v for k, v in row.items() if k != "curves"}


def _errors(row) -> str:
    if row.get("errors") is None:
        return f"not finished ({row['stop_reason']})"
    return ", ".join(f"{x:.1e}" for x in row["errors"])


def _windows(row) -> str:
    refits = row.get("refits")
    return f"{row['windows']}" + (f" ({refits})" if refits else "")


def _worst(row) -> str:
    if row.get("errors") is None:
        return "-"
    return f"{max(row['errors']):.1e}"


def markdown(data: dict) -> str:
    """The tables of benchmarks/README.md and docs/how-to/stiff.md."""
    lines = [
        "| problem | method | windows (refits) | wall time (s) | worst component | "
        "relative L2 per component | bar 1e-3 met |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, label in BARS.items():
        entry = data["problems"].get(name)
        if entry is None:
            lines.append(f"| {label} | not run | | | | | |")
            continue
        for method in ("plain default", "planned windows only", "full"):
            row = entry.get(method)
            if row is None:
                continue
            met = row.get("errors") is not None and max(row["errors"]) <= 1e-3
            shown = method
            if method == "full" and "tolerance" in entry:
                shown = f"stiff marching (full), tolerance {entry['tolerance']:g}"
            elif method != "plain default":
                shown = f"stiff marching, {method}"
            if method != "plain default":
                shown += f", max_change {entry.get('max_change', 1.0):g}"
            lines.append(
                f"| {label} | {shown} | {_windows(row)} | {row['wall_time']:.0f} | "
                f"{_worst(row)} | {_errors(row)} | {'yes' if met else 'no'} |"
            )
    lines += [
        "",
        "Ablation on Robertson (each row: the full method less one piece):",
        "",
    ]
    lines += [
        "| variant | windows (refits) | wall time (s) | worst component | relative "
        "L2 per component |",
        "|---|---|---|---|---|",
    ]
    entry = data["problems"].get("robertson", {})
    rows = {
        "full": entry.get("full"),
        "planned windows only (no tolerance)": entry.get("planned windows only"),
        **entry.get("ablation", {}),
    }
    rows["plain default"] = entry.get("plain default")
    for variant, row in rows.items():
        if row is None:
            continue
        lines.append(
            f"| {variant} | {_windows(row)} | {row['wall_time']:.0f} | "
            f"{_worst(row)} | {_errors(row)} |"
        )
    loads = [
        (n, e.get("load_average_start"), e.get("load_average_end"))
        for n, e in data["problems"].items()
    ]
    lines += [
        "",
        "float64, one run each, every run bounded in wall time (`--budget`). "
        "Each problem was written by its own `python benchmarks/stiff.py --only "
        "NAME` run (the options are listed above the table); first run "
        f"{data.get('date')}, odefit "
        f"{data.get('versions', {}).get('odefit_commit', '?')}. Wall times include "
        "compilation and were taken on a 2-core CPU shared with other jobs; load "
        "averages (1, 5, 15 min) at the start and end of each problem: "
        + "; ".join(f"{n} {a} -> {b}" for n, a, b in loads)
        + ". The errors do not depend on the load.",
    ]
    return "\n".join(lines)


def write_readme(data: dict) -> None:
    readme = Path(__file__).resolve().parent / "README.md"
    text = readme.read_text(encoding="utf-8")
    start, end = "<!-- stiff:start -->", "<!-- stiff:end -->"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{start}\n{markdown(data)}\n{end}{tail}"
        readme.write_text(text, encoding="utf-8")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default=None)
    parser.add_argument("--budget", type=float, default=600.0)
    parser.add_argument("--no-ablation", action="store_true")
    parser.add_argument("--max-change", type=float, default=1.0)
    parser.add_argument("--tolerance", type=float, default=1e-7)
    parser.add_argument(
        "--ablation-budget", type=float, default=300.0, help="seconds per row"
    )
    parser.add_argument("--readme", action="store_true", help="only rewrite README")
    ns = parser.parse_args()
    if ns.readme:
        write_readme(json.loads(RESULTS.read_text()))
        return
    command = "python benchmarks/stiff.py " + " ".join(sys.argv[1:])
    out = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    out.setdefault("problems", {})
    out = complete(out, command.strip(), repeats=1)
    out["load_average_start"] = load_average()
    chosen = ns.only.split(",") if ns.only else list(problems())
    for name, (problem, ts) in problems().items():
        if name not in chosen:
            continue
        reference = problem.solve(ts)
        entry = {"load_average_start": load_average()}
        if ns.no_ablation and "ablation" in out["problems"].get(name, {}):
            entry["ablation"] = out["problems"][name]["ablation"]
        entry["full"] = run_marching(
            problem,
            ts,
            reference,
            ns.budget,
            stiff=True,
            max_change=ns.max_change,
            tolerance=ns.tolerance,
        )
        entry["max_change"] = ns.max_change
        entry["tolerance"] = ns.tolerance
        entry["command"] = command.strip()
        print(name, "full", _brief(entry["full"]), flush=True)
        entry["planned windows only"] = run_marching(
            problem, ts, reference, ns.budget, stiff=True, max_change=ns.max_change
        )
        print(name, "planned", _brief(entry["planned windows only"]), flush=True)
        entry["plain default"] = run_plain(problem, ts, reference, ns.budget)
        print(name, "plain", entry["plain default"], flush=True)
        if name == "robertson" and not ns.no_ablation:
            entry["ablation"] = ablation(
                problem,
                ts,
                reference,
                ns.ablation_budget,
                entry["planned windows only"]["windows"],
                ns.tolerance,
            )
            for variant, row in entry["ablation"].items():
                print(name, variant, _brief(row), flush=True)
        entry["load_average_end"] = load_average()
        # Merged into the file as it is now: several problems may run at once.
        if RESULTS.is_file():
            out["problems"] = json.loads(RESULTS.read_text())["problems"]
        out["problems"][name] = entry
        out["load_average_end"] = load_average()
        RESULTS.write_text(json.dumps(out, indent=2) + "\n")
        write_readme(out)


if __name__ == "__main__":
    main()
