"""What does a user's own loss term buy? Energy conservation for the pendulum.

The pendulum theta'' = -sin(theta), theta(0) = 1, theta'(0) = 0 on [0, 6] (the
problem of `examples/pendulum.py`, same network, steps and points) conserves
E = theta'^2 / 2 + 1 - cos(theta). A user term adds E(t) - E(0) at the collocation
points to the loss:

    def energy(model, problem, args, ts):
        theta, dtheta = jax.vmap(lambda t: jax.jvp(model, (t,), (1.0,)))(ts)
        return 0.5 * dtheta**2 + 1 - jnp.cos(theta) - E0

Each seed is fit with `odefit.fit_stages` (default Adam, then `odefit.LBFGS` on a
fixed grid) with the term at weight 0 (absent), 1 and 10; the error is measured
against the diffrax reference on 1001 times. Writes
`benchmarks/results/custom_terms.json`.

    python benchmarks/custom_terms.py [--seeds 3] [--weights 0,1,10]
"""

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import odefit

E0 = 1.0 - float(np.cos(1.0))


def pendulum(t, theta, dtheta, args):
    return -jnp.sin(theta)


def energy(model, problem, args, ts):
    def state(t):
        return jax.jvp(model, (t,), (jnp.ones_like(t),))

    theta, dtheta = jax.vmap(state)(ts)
    return 0.5 * dtheta**2 + 1.0 - jnp.cos(theta) - E0


def run(seed: int, weight: float, args) -> dict:
    problem = odefit.SecondOrderIVP(pendulum, t0=0.0, t1=6.0, y0=1.0, dy0=0.0)
    model = odefit.PINN(problem, width=32, depth=2, key=jr.key(seed))
    stages = [
        (None, args.adam_steps),
        (odefit.LBFGS(), args.lbfgs_steps, odefit.Grid(args.points)),
    ]
    tic = time.perf_counter()
    result = odefit.fit_stages(
        problem,
        model,
        stages,
        key=jr.key(seed + 1),
        terms={"energy": energy} if weight > 0 else None,
        weights={"energy": weight} if weight > 0 else None,
        progress=False,
    )
    wall = time.perf_counter() - tic
    ts = jnp.linspace(0.0, 6.0, 1001)
    theta = problem.solve(ts)
    drift = energy(result.model, problem, None, ts)
    return {
        "seed": seed,
        "weight": weight,
        "relative_l2": float(odefit.relative_l2(result.model.predict(ts), theta)),
        "max_energy_drift": float(jnp.max(jnp.abs(drift))),
        "stop_reason": result.stop_reason.split(":")[0],
        "wall_time_s": wall,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--weights", default="0,1,10")
    parser.add_argument("--adam-steps", type=int, default=2000)
    parser.add_argument("--lbfgs-steps", type=int, default=1000)
    parser.add_argument("--points", type=int, default=128)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    weights = [float(w) for w in args.weights.split(",")]
    rows = []
    for seed in range(args.seeds):
        for weight in weights:
            row = run(seed, weight, args)
            print(json.dumps(row), flush=True)
            rows.append(row)
    summary = {}
    for weight in weights:
        errors = [r["relative_l2"] for r in rows if r["weight"] == weight]
        drifts = [r["max_energy_drift"] for r in rows if r["weight"] == weight]
        summary[str(weight)] = {
            "median_relative_l2": float(np.median(errors)),
            "min_max_relative_l2": [float(np.min(errors)), float(np.max(errors))],
            "median_max_energy_drift": float(np.median(drifts)),
        }
    out = {
        "command": "python " + " ".join(sys.argv),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "load_average": os.getloadavg(),
        "machine": f"{platform.machine()}, {jax.default_backend()}, "
        f"{os.cpu_count()} cores",
        "versions": {"jax": jax.__version__, "odefit": odefit.__version__},
        "dtype": str(jnp.zeros(()).dtype),
        "problem": "pendulum theta'' = -sin(theta), theta(0)=1, theta'(0)=0, [0, 6]",
        "recipe": f"PINN width 32 depth 2; default Adam {args.adam_steps} steps, "
        f"then odefit.LBFGS {args.lbfgs_steps} steps on Grid({args.points})",
        "repeats": args.seeds,
        "runs": rows,
        "summary_by_weight": summary,
    }
    path = Path(args.out or Path(__file__).parent / "results" / "custom_terms.json")
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
