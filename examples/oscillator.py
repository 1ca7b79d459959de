"""Damped harmonic oscillator u'' + 4u' + 400u = 0 on [0, 1], u(0) = 1, u'(0) = 0,
fit by a physics-informed network as the first-order system y = (u, u')."""

import jax
import jax.numpy as jnp
import jax.random as jr
from _cli import OUTPUT, Timer, report, run

import odefit

DAMPING, STIFFNESS = 4.0, 400.0


def oscillator(t, y, args):
    u, v = y
    return jnp.stack([v, -STIFFNESS * u - DAMPING * v])


def exact(ts):
    """The closed-form solution (u, u')."""
    a, w = DAMPING / 2, jnp.sqrt(STIFFNESS - DAMPING**2 / 4)
    u = jnp.exp(-a * ts) * (jnp.cos(w * ts) + a / w * jnp.sin(w * ts))
    du = -jnp.exp(-a * ts) * (w + a**2 / w) * jnp.sin(w * ts)
    return jnp.stack([u, du], axis=-1)


def main(
    *,
    steps: int = 40_000,
    width: int = 64,
    depth: int = 3,
    points: int = 256,
    seed: int = 0,
    progress: bool = True,
    plot: bool = True,
) -> dict:
    timer = Timer()
    problem = odefit.IVP(oscillator, t0=0.0, t1=1.0, y0=jnp.array([1.0, 0.0]))
    model = odefit.PINN(problem, width=width, depth=depth, key=jr.key(seed))
    result = odefit.fit(
        problem,
        model,
        steps=steps,
        collocation=odefit.Uniform(points, warmup=steps // 2),
        key=jr.key(seed + 1),
        progress=progress,
    )
    wall = timer()
    ts = jnp.linspace(0.0, 1.0, 1001)
    pred = jax.vmap(result.model)(ts)
    reference = problem.solve(ts)
    rows = {
        "relative L2 (u, u') vs exact": float(odefit.relative_l2(pred, exact(ts))),
        "relative L2 u vs exact": float(
            odefit.relative_l2(pred[:, 0], exact(ts)[:, 0])
        ),
        "relative L2 vs diffrax": float(odefit.relative_l2(pred, reference)),
        "max abs error u": float(odefit.max_abs_error(pred[:, 0], exact(ts)[:, 0])),
        "steps": str(result.steps),
        "stop reason": result.stop_reason,
        "wall time [s]": f"{wall:.1f} (compile {result.compile_time:.1f})",
    }
    report("damped harmonic oscillator", rows)
    if plot:
        odefit.plot_fit(
            result,
            ts=ts,
            reference=exact(ts),
            labels=["u", "u'"],
            title="damped oscillator",
            path=OUTPUT / "oscillator.png",
        )
    return {"relative_l2": rows["relative L2 (u, u') vs exact"], "wall_time": wall}


SMOKE = dict(steps=300, width=16, depth=2, progress=False)

if __name__ == "__main__":
    run(main, SMOKE)
