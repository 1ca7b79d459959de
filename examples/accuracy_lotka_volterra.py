"""Lotka–Volterra (a, b, c, d) = (1.5, 1, 3, 1), y(0) = (1, 1) on [0, 10], to a
relative L2 error below 1e-4: time marching with an Adam warm-up and a
Levenberg–Marquardt polish in every window, in float64.

A single network trained on the whole interval with Adam stays at ~99% relative
error (it settles on a function with a small residual that is not the solution).
Marching fits the problem window by window — windows chosen from how fast the
solution changes — each starting exactly where the previous one ended; in each
window Levenberg–Marquardt takes the residual down by orders of magnitude beyond
where Adam stalls. The error indicator (the linearised error equation integrated
along the fit, no reference used) is printed next to the true error.
"""

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import optax  # noqa: E402
from _cli import OUTPUT, Timer, report, run  # noqa: E402

import odefit  # noqa: E402


def lotka_volterra(t, y, args):
    a, b, c, d = args
    prey, predator = y
    return jnp.stack(
        [a * prey - b * prey * predator, -c * predator + d * prey * predator]
    )


def main(
    *,
    t1: float = 10.0,
    max_change: float = 1.0,
    width: int = 20,
    depth: int = 2,
    points: int = 128,
    adam_steps: int = 300,
    lm_steps: int = 100,
    seed: int = 0,
    progress: bool = False,
    plot: bool = True,
) -> dict:
    timer = Timer()
    problem = odefit.IVP(
        lotka_volterra,
        t0=0.0,
        t1=t1,
        y0=jnp.array([1.0, 1.0]),
        args=(1.5, 1.0, 3.0, 1.0),
    )
    warmup = optax.adam(optax.exponential_decay(1e-2, adam_steps, 1e-2))
    result = odefit.fit_marching(
        problem,
        stages=[
            (warmup, adam_steps),
            (odefit.LevenbergMarquardt(points=points), lm_steps),
        ],
        max_change=max_change,
        width=width,
        depth=depth,
        key=jr.key(seed),
        progress=progress,
    )
    wall = timer()
    ts = jnp.linspace(0.0, t1, 2001)
    pred = jax.vmap(result.model)(ts)
    reference = problem.solve(ts)
    estimate = odefit.error_estimate(problem, result.model, ts)
    rows = {
        "relative L2 vs diffrax": float(odefit.relative_l2(pred, reference)),
        "max abs error": float(odefit.max_abs_error(pred, reference)),
        "error indicator (no reference)": float(estimate.relative_l2),
        "windows": str(len(result.windows)),
        "steps": str(result.steps),
        "stop reason": result.stop_reason,
        "wall time [s]": f"{wall:.1f}",
    }
    report("Lotka–Volterra, time marching Adam→LM", rows)
    if plot:
        odefit.plot_fit(
            result,
            ts=ts,
            reference=reference,
            labels=["prey", "predator"],
            title="Lotka–Volterra, marching Adam→LM",
            path=OUTPUT / "accuracy_lotka_volterra.png",
        )
    return {"relative_l2": rows["relative L2 vs diffrax"], "wall_time": wall}


SMOKE = dict(t1=2.0, max_change=2.0, width=8, adam_steps=50, lm_steps=10, points=32)

if __name__ == "__main__":
    run(main, SMOKE)
