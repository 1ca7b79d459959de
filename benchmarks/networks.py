"""Accuracy of the networks odefit ships for `PINN(problem, network=...)`.

The harmonic oscillator y'' = -ω² y, y(0) = 1, y'(0) = 0 on [0, 1] (exact solution
cos(ωt)), fit by `PINN` with the default `eqx.nn.MLP`, `odefit.ResidualMLP` and
`odefit.FourierMLP`, each with the same width and depth, the same training
(Adam 1e-3 for 2000 steps, then 200 Levenberg–Marquardt steps on 256 points, float64)
and several seeds. Reports the relative L2 error against cos(ωt) on 1001 points:
median and range over the seeds, and the number of trained weights.

Run: `OMP_NUM_THREADS=1 python benchmarks/networks.py` (writes
benchmarks/results/networks.json); `--readme` also writes the table into
benchmarks/README.md; `--quick` for one seed and one frequency (writes nothing).
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax

import odefit

RESULTS = Path(__file__).resolve().parent / "results" / "networks.json"
WIDTH, DEPTH = 32, 2
ADAM_STEPS, LM_STEPS, POINTS = 2000, 200, 256


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def oscillator(omega: float) -> odefit.SecondOrderIVP:
    return odefit.SecondOrderIVP(
        lambda t, y, dy, args: -(args**2) * y, 0.0, 1.0, 1.0, 0.0, args=omega
    )


def networks(key) -> dict:
    return {
        "MLP": None,
        "ResidualMLP": odefit.ResidualMLP(
            out_size=1, width=WIDTH, depth=DEPTH, key=key
        ),
        "FourierMLP (16 frequencies, sigma=1)": odefit.FourierMLP(
            out_size=1, width=WIDTH, depth=DEPTH, frequencies=16, sigma=1.0, key=key
        ),
    }


def run_one(omega: float, name: str, seed: int) -> dict:
    problem = oscillator(omega)
    key = jr.key(seed)
    network = networks(key)[name]
    if network is None:
        model = odefit.PINN(problem, width=WIDTH, depth=DEPTH, key=key)
    else:
        model = odefit.PINN(problem, network=network)
    params, _ = eqx.partition(model, model.trainable())
    start = time.perf_counter()
    result = odefit.fit_stages(
        problem,
        model,
        [
            (optax.adam(1e-3), ADAM_STEPS),
            (odefit.LevenbergMarquardt(points=POINTS), LM_STEPS),
        ],
        key=jr.key(seed + 1000),
        progress=False,
    )
    wall = time.perf_counter() - start
    ts = jnp.linspace(0.0, 1.0, 1001)
    error = float(odefit.relative_l2(jax.vmap(result.model)(ts), jnp.cos(omega * ts)))
    return {
        "omega": omega,
        "network": name,
        "seed": seed,
        "trained_weights": int(sum(x.size for x in jax.tree.leaves(params))),
        "relative_l2": error,
        "wall_time": wall,
        "stop_reason": result.stop_reason,
    }


def markdown(results: dict) -> str:
    """The summary as a Markdown table (the docs print it from the JSON file)."""
    lines = [
        "| ω | network | trained weights | relative L2 (median) | min – max |",
        "|---|---|---|---|---|",
    ]
    for row in results["summary"]:
        lines.append(
            f"| {row['omega']:g} | {row['network']} | {row['trained_weights']:,} | "
            f"{row['relative_l2_median']:.1e} | {row['relative_l2_min']:.1e} – "
            f"{row['relative_l2_max']:.1e} |"
        )
    m, setup = results["machine"], results["setup"]
    seeds = results["summary"][0]["seeds"]
    lines += [
        "",
        f"Width {setup['width']}, depth {setup['depth']}; {setup['training']}; "
        f"{seeds} seeds. Measured {results['date'][:10]} on {m['cores']} CPU cores, "
        f"JAX {m['jax']}, Equinox {m['equinox']}, load average "
        f"{'/'.join(f'{x:.1f}' for x in m['load_average_start'])} at the start. "
        f"Command: `{results['command']}`.",
    ]
    return "\n".join(lines)


def write_readme(text: str) -> None:
    """Puts `text` between the `networks` markers of benchmarks/README.md."""
    path = Path(__file__).resolve().parent / "README.md"
    start, end = "<!-- networks:start -->", "<!-- networks:end -->"
    block = f"{start}\n{text}\n{end}"
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if start in old and end in old:
        new = old[: old.index(start)] + block + old[old.index(end) + len(end) :]
    else:
        new = (
            old.rstrip()
            + "\n\n## Networks for `PINN(problem, network=...)`\n\n"
            + "`python benchmarks/networks.py`: the default MLP, `ResidualMLP` and "
            + "`FourierMLP` on a fast oscillation (see docs/how-to/custom-network.md)."
            + "\n\n"
            + block
            + "\n"
        )
    path.write_text(new, encoding="utf-8")


def main(quick: bool = False) -> dict:
    # Here, not at import: the docs build imports this file for `markdown`.
    jax.config.update("jax_enable_x64", True)
    omegas = [60.0] if quick else [20.0, 60.0]
    seeds = [0] if quick else [0, 1, 2]
    started = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "command": "OMP_NUM_THREADS=1 python benchmarks/networks.py"
        + (" --quick" if quick else ""),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "devices": [str(d) for d in jax.devices()],
            "python": platform.python_version(),
            "jax": jax.__version__,
            "equinox": eqx.__version__,
            "optax": optax.__version__,
            "odefit": odefit.__version__,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "load_average_start": os.getloadavg(),
            "uptime_start": _uptime(),
        },
        "setup": {
            "problem": "y'' = -omega^2 y, y(0)=1, y'(0)=0 on [0, 1]; cos(omega t)",
            "width": WIDTH,
            "depth": DEPTH,
            "training": f"Adam(1e-3) x {ADAM_STEPS}, then LevenbergMarquardt"
            f"(points={POINTS}) x {LM_STEPS}; float64",
            "error": "relative L2 against cos(omega t) on 1001 points in [0, 1]",
        },
    }
    runs = []
    for omega in omegas:
        for name in networks(jr.key(0)):
            for seed in seeds:
                row = run_one(omega, name, seed)
                print(
                    f"omega={omega:g} {name:<38} seed {seed}: "
                    f"{row['relative_l2']:.2e} ({row['wall_time']:.1f} s)",
                    flush=True,
                )
                runs.append(row)
    summary = []
    for omega in omegas:
        for name in networks(jr.key(0)):
            rows = [r for r in runs if r["omega"] == omega and r["network"] == name]
            errors = [r["relative_l2"] for r in rows]
            summary.append(
                {
                    "omega": omega,
                    "network": name,
                    "trained_weights": rows[0]["trained_weights"],
                    "seeds": len(rows),
                    "relative_l2_median": statistics.median(errors),
                    "relative_l2_min": min(errors),
                    "relative_l2_max": max(errors),
                }
            )
    results = dict(started, summary=summary, runs=runs)
    results["load_average_end"] = os.getloadavg()
    results["uptime_end"] = _uptime()
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--readme", action="store_true", help="update README.md")
    args = parser.parse_args()
    results = main(quick=args.quick)
    print(markdown(results))
    if not args.quick:
        RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {RESULTS}")
        if args.readme:
            write_readme(markdown(results))
