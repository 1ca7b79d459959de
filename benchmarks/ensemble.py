"""An ensemble of oscillator PINNs in one compiled program against sequential fits.

64 damped oscillators u'' = -400 u - c u' on [0, 1] (u(0) = 1, u'(0) = 0), one per
damping ratio zeta = c / 40 from 0.05 to 0.5, each with its own network (1→64→64→64→1,
tanh, its own initial weights) and its own random collocation points (256 per step,
growing window), trained with Adam (1e-2 → 1e-4):

- **sequential**: 64 calls of `odefit.fit`, one after the other (the training loop is
  compiled once and reused: `args` are arrays, so the calls share one program);
- **ensemble**: one call of `odefit.fit_ensemble` with `batch_size=None` (`vmap`
  over all members inside the compiled loop), and with `batch_size=k` (members `k`
  at a time; the default on a CPU is 8).

Both follow the same per-member trajectories (same weights, keys and points), so
they reach the same per-member accuracy; the benchmark checks it (relative L2 error
of every member against the closed-form solution) before reporting times. Wall
times include compilation; the networks are built beforehand for both.

    python benchmarks/ensemble.py [--members 64] [--steps 500] [--batch-sizes 8]
    python benchmarks/ensemble.py --quick
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

import odefit

HERE = Path(__file__).resolve().parent
STIFFNESS = 400.0


def oscillator(t, u, du, damping):
    return -STIFFNESS * u - damping * du


def exact(ts, damping):
    a = damping / 2
    w = jnp.sqrt(STIFFNESS - a**2)
    return jnp.exp(-a * ts) * (jnp.cos(w * ts) + a / w * jnp.sin(w * ts))


def main(
    members=64,
    steps=500,
    width=64,
    points=256,
    batch_sizes=(8,),
    quick=False,
    write=True,
):
    """Runs the comparison; with `write`, saves it in `results/` (another script,
    e.g. `gpu.py`, takes the returned dict instead)."""
    ratios = np.linspace(0.05, 0.5, members)
    dampings = 2 * ratios * np.sqrt(STIFFNESS)
    problems = [
        odefit.SecondOrderIVP(oscillator, 0.0, 1.0, 1.0, 0.0, args=jnp.asarray(c))
        for c in dampings
    ]
    keys = jr.split(jr.key(0), members)
    models = [
        odefit.PINN(p, width=width, depth=3, scale=1.0, key=k)
        for p, k in zip(problems, keys, strict=True)
    ]
    optimizer = optax.adam(optax.exponential_decay(1e-2, steps, 1e-2))
    collocation = odefit.Uniform(points, warmup=steps // 2)
    fit_keys = jr.split(jr.key(1), members)
    ts = jnp.linspace(0.0, 1.0, 1001)
    references = jax.vmap(lambda c: exact(ts, c))(jnp.asarray(dampings))
    load_start = os.getloadavg()

    def errors_of(models_):
        return np.asarray(
            [
                odefit.relative_l2(jax.vmap(m)(ts), references[i])
                for i, m in enumerate(models_)
            ]
        )

    runs = {}
    tic = time.perf_counter()
    sequential = [
        odefit.fit(
            problems[i],
            models[i],
            steps=steps,
            optimizer=optimizer,
            collocation=collocation,
            key=fit_keys[i],
            progress=False,
        )
        for i in range(members)
    ]
    wall = time.perf_counter() - tic
    runs["sequential fit"] = {
        "wall_s": wall,
        "compile_s": sequential[0].compile_time,
        "errors": errors_of([r.model for r in sequential]),
        "losses": np.stack([r.history["loss"] for r in sequential]),
    }
    print(f"sequential: {wall:.1f} s", flush=True)
    for batch_size in (None, *batch_sizes):
        name = f"fit_ensemble (batch_size={batch_size})"
        tic = time.perf_counter()
        result = odefit.fit_ensemble(
            problems,
            models,
            steps=steps,
            optimizer=optimizer,
            collocation=collocation,
            key=fit_keys,
            batch_size=batch_size,
            progress=False,
        )
        wall = time.perf_counter() - tic
        runs[name] = {
            "wall_s": wall,
            "compile_s": result.compile_time,
            "errors": result.relative_l2(ts, references),
            "losses": result.history["loss"],
        }
        print(f"{name}: {wall:.1f} s", flush=True)
    base = runs["sequential fit"]
    out = {
        "command": "python benchmarks/ensemble.py"
        + (" --quick" if quick else "")
        + f" --members {members} --steps {steps} --batch-sizes "
        + ",".join(map(str, batch_sizes)),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "jax": jax.__version__,
            "device": f"{jax.devices()[0].device_kind} ×{jax.device_count()}",
            "load_start": " ".join(f"{x:.1f}" for x in load_start),
            "load_end": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        },
        "members": members,
        "steps": steps,
        "width": width,
        "points": points,
        "runs": {},
    }
    for name, r in runs.items():
        out["runs"][name] = {
            "wall_s": r["wall_s"],
            "compile_s": r["compile_s"],
            "speedup_vs_sequential": base["wall_s"] / r["wall_s"],
            "member_steps_per_s": members * steps / r["wall_s"],
            "relative_l2_mean": float(r["errors"].mean()),
            "relative_l2_std": float(r["errors"].std()),
            "relative_l2_min": float(r["errors"].min()),
            "relative_l2_max": float(r["errors"].max()),
            "max_member_error_difference_vs_sequential": float(
                np.max(np.abs(r["errors"] - base["errors"]) / base["errors"])
            ),
            "max_loss_history_difference_vs_sequential": float(
                np.max(np.abs(r["losses"] - base["losses"]) / np.abs(base["losses"]))
            ),
        }
    text = markdown(out)
    print(text)
    from _meta import complete  # benchmarks/_meta.py, beside this script

    out = complete(out, out["command"], repeats=1)
    if write:
        path = HERE / "results" / ("ensemble_quick.json" if quick else "ensemble.json")
        path.write_text(json.dumps(out, indent=1) + "\n")
    return out


def markdown(out) -> str:
    m = out["machine"]
    lines = [
        f"{out['members']} oscillator PINNs (width {out['width']}, {out['points']} "
        f"points, {out['steps']} Adam steps each) on {m['cpu']}, {m['cores']} cores, "
        f"JAX {m['jax']} on {m['device']}; load average {m['load_start']} at the "
        f"start, {m['load_end']} at the end. Command: `{out['command']}`",
        "",
        "| how | wall [s] | compile [s] | speed-up | member-steps/s | relative L2 "
        "(mean ± std) | max rel. diff. of member errors vs sequential |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in out["runs"].items():
        lines.append(
            f"| {name} | {r['wall_s']:.1f} | {r['compile_s']:.1f} | "
            f"{r['speedup_vs_sequential']:.2f}× | {r['member_steps_per_s']:.0f} | "
            f"{r['relative_l2_mean']:.3g} ± {r['relative_l2_std']:.2g} | "
            f"{r['max_member_error_difference_vs_sequential']:.1e} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=64)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--points", type=int, default=256)
    parser.add_argument("--batch-sizes", default="8")
    parser.add_argument("--quick", action="store_true", help="8 members, 200 steps")
    args = parser.parse_args()
    batch_sizes = tuple(int(x) for x in args.batch_sizes.split(",") if x)
    if args.quick:
        main(8, 200, 32, 128, batch_sizes[:1] or (4,), quick=True)
    else:
        main(args.members, args.steps, args.width, args.points, batch_sizes)
