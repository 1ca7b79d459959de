"""The nonlinear pendulum theta'' = -sin(theta), theta(0) = 1, theta'(0) = 0 on
[0, 6]: a second-order initial-value problem. The PINN builds both initial
conditions in exactly (theta = 1 + 0 * t + s^2 N(t)), so only the residual
theta'' + sin(theta), with theta'' from Taylor-mode differentiation, is trained:
an Adam warm-up on redrawn points, then L-BFGS (`odefit.LBFGS`) on a fixed grid."""

import jax
import jax.numpy as jnp
import jax.random as jr
from _cli import OUTPUT, Timer, report, run

import odefit


def pendulum(t, theta, dtheta, args):
    return -jnp.sin(theta)


def main(
    *,
    adam_steps: int = 2000,
    lbfgs_steps: int = 1000,
    width: int = 32,
    depth: int = 2,
    points: int = 128,
    seed: int = 0,
    progress: bool = True,
    plot: bool = True,
) -> dict:
    timer = Timer()
    problem = odefit.SecondOrderIVP(pendulum, t0=0.0, t1=6.0, y0=1.0, dy0=0.0)
    model = odefit.PINN(problem, width=width, depth=depth, key=jr.key(seed))
    warm = odefit.fit(
        problem, model, steps=adam_steps, key=jr.key(seed + 1), progress=progress
    )
    result = odefit.fit(
        problem,
        warm.model,
        steps=lbfgs_steps,
        optimizer=odefit.LBFGS(),
        collocation=odefit.Grid(points),
        key=jr.key(seed + 2),
        progress=progress,
    )
    wall = timer()

    ts = jnp.linspace(0.0, 6.0, 1001)
    theta, dtheta = problem.solve(ts, derivative=True)
    pred = result.model.predict(ts)
    pred_dtheta = jax.vmap(
        lambda t: jax.jvp(result.model, (t,), (jnp.ones_like(t),))[1]
    )(ts)
    rows = {
        "relative L2 theta vs diffrax": float(odefit.relative_l2(pred, theta)),
        "relative L2 theta' vs diffrax": float(odefit.relative_l2(pred_dtheta, dtheta)),
        "max abs error theta": float(odefit.max_abs_error(pred, theta)),
        "relative L2 after Adam": float(
            odefit.relative_l2(warm.model.predict(ts), theta)
        ),
        "steps": f"{warm.steps} Adam + {result.steps} L-BFGS",
        "stop reason": result.stop_reason.split(":")[0],
        "dtype": str(pred.dtype),
        "wall time [s]": f"{wall:.1f} (compile {warm.compile_time:.1f} + "
        f"{result.compile_time:.1f})",
    }
    report("pendulum (second order)", rows)
    if plot:
        odefit.plot_fit(
            odefit.join_results([warm, result]),
            ts=ts,
            reference=theta,
            labels=["theta"],
            title="pendulum",
            path=OUTPUT / "pendulum.png",
        )
    return {
        "relative_l2": rows["relative L2 theta vs diffrax"],
        "wall_time": wall,
    }


SMOKE = dict(adam_steps=100, lbfgs_steps=50, width=16, points=32, progress=False)

if __name__ == "__main__":
    run(main, SMOKE)
