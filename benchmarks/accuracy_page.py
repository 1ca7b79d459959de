"""The two measured tables of docs/accuracy.md, by running the page's own code.

Table 1: 5000 default Adam steps on the damped oscillator of the page (width 24,
depth 2, float64), then each last stage of the table from the same Adam result.
Table 2: the long-horizon oscillator on [0, 20], one network against
`fit_marching`, and `error_estimate` of the marched fit. Results go to
`results/accuracy_page.json`; the page prints its tables from that file.

    python benchmarks/accuracy_page.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

import odefit  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _meta import load_average, metadata  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def oscillator(t, y, args):
    damping, frequency = args
    position, velocity = y
    acceleration = -2 * damping * frequency * velocity - frequency**2 * position
    return jnp.stack([velocity, acceleration])


def last_stages(problem, error):
    model = odefit.PINN(problem, width=24, depth=2, key=jax.random.key(0))
    adam = odefit.fit(problem, model, steps=5000, key=jax.random.key(1), progress=False)
    rows = [("none (Adam only)", adam)]
    stages = [
        ("20 000 more Adam steps", dict(steps=20_000)),
        (
            "1000 optax.lbfgs() steps, Grid(256)",
            dict(steps=1000, optimizer=optax.lbfgs(), collocation=odefit.Grid(256)),
        ),
        ("1000 odefit.LBFGS() steps", dict(steps=1000, optimizer=odefit.LBFGS())),
        ("200 Gauss-Newton steps", dict(steps=200, optimizer=odefit.GaussNewton())),
        (
            "200 Levenberg-Marquardt steps",
            dict(steps=200, optimizer=odefit.LevenbergMarquardt()),
        ),
    ]
    for name, options in stages:
        print(name, flush=True)
        result = odefit.fit(
            problem, adam.model, key=jax.random.key(2), progress=False, **options
        )
        rows.append((name, result))
    return {
        name: {
            "relative_l2": float(error(r)),
            "wall_time_s": float(r.wall_time),
            "steps": int(r.steps),
            "stop_reason": r.stop_reason,
        }
        for name, r in rows
    }


def long_horizon():
    long = odefit.IVP(
        oscillator, t0=0.0, t1=20.0, y0=jnp.array([1.0, 0.0]), args=(0.05, 1.0)
    )
    ts_long = jnp.linspace(0.0, 20.0, 2001)
    reference_long = long.solve(ts_long)
    stages = [(optax.adam(3e-3), 1000), (odefit.LevenbergMarquardt(), 50)]
    one = odefit.fit_stages(
        long,
        odefit.PINN(long, width=24, depth=2, key=jax.random.key(0)),
        stages,
        key=jax.random.key(1),
        progress=False,
    )
    marched = odefit.fit_marching(
        long, stages=stages, width=24, depth=2, key=jax.random.key(1), progress=False
    )
    return {
        "one network": {
            "relative_l2": float(
                odefit.relative_l2(jax.vmap(one.model)(ts_long), reference_long)
            ),
            "wall_time_s": float(one.wall_time),
        },
        "fit_marching": {
            "relative_l2": float(
                odefit.relative_l2(jax.vmap(marched.model)(ts_long), reference_long)
            ),
            "wall_time_s": float(marched.wall_time),
            "windows": len(marched.windows),
        },
        "error_estimate of the marched fit": {
            "relative_l2": float(odefit.error_estimate(long, marched.model).relative_l2)
        },
    }


def main():
    out = metadata("python benchmarks/accuracy_page.py", repeats=1)
    out["dtype"] = "float64"
    problem = odefit.IVP(
        oscillator, t0=0.0, t1=6.0, y0=jnp.array([1.0, 0.0]), args=(0.2, 1.0)
    )
    ts = jnp.linspace(0.0, 6.0, 601)
    reference = problem.solve(ts)

    def error(result):
        return odefit.relative_l2(jax.vmap(result.model)(ts), reference)

    out["last_stage"] = last_stages(problem, error)
    print(json.dumps(out["last_stage"], indent=1), flush=True)
    out["long_horizon"] = long_horizon()
    out["load_average_end"] = load_average()
    path = RESULTS / "accuracy_page.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out["long_horizon"], indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
