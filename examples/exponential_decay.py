"""Exponential decay y' = -2y, y(0) = 1 on [0, 2], fit by a physics-informed
network and compared with the exact solution exp(-2t) and a diffrax reference."""

import jax
import jax.numpy as jnp
import jax.random as jr
from _cli import OUTPUT, Timer, report, run

import odefit


def decay(t, y, args):
    return -args * y


def main(
    *,
    steps: int = 20_000,
    width: int = 64,
    depth: int = 3,
    rate: float = 2.0,
    seed: int = 0,
    progress: bool = True,
    plot: bool = True,
) -> dict:
    timer = Timer()
    problem = odefit.IVP(decay, t0=0.0, t1=2.0, y0=1.0, args=rate)
    model = odefit.PINN(problem, width=width, depth=depth, key=jr.key(seed))
    result = odefit.fit(
        problem, model, steps=steps, key=jr.key(seed + 1), progress=progress
    )
    wall = timer()
    ts = jnp.linspace(0.0, 2.0, 1001)
    pred = jax.vmap(result.model)(ts)
    rows = {
        "relative L2 vs exact": float(odefit.relative_l2(pred, jnp.exp(-rate * ts))),
        "relative L2 vs diffrax": float(odefit.relative_l2(pred, problem.solve(ts))),
        "max abs error": float(odefit.max_abs_error(pred, jnp.exp(-rate * ts))),
        "steps": str(result.steps),
        "stop reason": result.stop_reason,
        "wall time [s]": f"{wall:.1f} (compile {result.compile_time:.1f})",
    }
    report("exponential decay", rows)
    if plot:
        odefit.plot_fit(
            result,
            ts=ts,
            title="exponential decay",
            path=OUTPUT / "exponential_decay.png",
        )
    return {"relative_l2": rows["relative L2 vs exact"], "wall_time": wall}


SMOKE = dict(steps=300, width=16, depth=2, progress=False)

if __name__ == "__main__":
    run(main, SMOKE)
