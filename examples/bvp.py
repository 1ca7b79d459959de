"""Two-point boundary-value problems y'' = g(t, y, y') with y(t0) = ya, y(t1) = yb,
fit by a PINN whose ansatz y = (1 - s) ya + s yb + s (1 - s) N(t) meets both
boundary values exactly:

- y'' = -pi^2 sin(pi t) on [0, 1], y(0) = y(1) = 0, whose solution is sin(pi t);
- Bratu's problem y'' = -e^y on [0, 1], y(0) = y(1) = 0 (nonlinear, no closed
  form), checked against the shooting reference (`BVP.solve`: diffrax +
  optimistix Newton on the initial slope).

Each is an Adam warm-up then L-BFGS (`odefit.LBFGS`) on a fixed grid."""

import jax.numpy as jnp
import jax.random as jr
from _cli import OUTPUT, Timer, report, run

import odefit


def sine_forcing(t, y, dy, args):
    return -(jnp.pi**2) * jnp.sin(jnp.pi * t)


def bratu(t, y, dy, args):
    return -args * jnp.exp(y)


def solve(problem, *, adam_steps, lbfgs_steps, width, depth, points, seed, progress):
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
    return odefit.join_results([warm, result])


def main(
    *,
    adam_steps: int = 1000,
    lbfgs_steps: int = 1000,
    width: int = 32,
    depth: int = 2,
    points: int = 128,
    seed: int = 0,
    progress: bool = True,
    plot: bool = True,
) -> dict:
    options = dict(
        adam_steps=adam_steps,
        lbfgs_steps=lbfgs_steps,
        width=width,
        depth=depth,
        points=points,
        seed=seed,
        progress=progress,
    )
    ts = jnp.linspace(0.0, 1.0, 1001)
    out = {}
    for name, problem, exact in (
        (
            "sine",
            odefit.BVP(sine_forcing, t0=0.0, t1=1.0, ya=0.0, yb=0.0),
            jnp.sin(jnp.pi * ts),
        ),
        (
            "bratu",
            odefit.BVP(bratu, t0=0.0, t1=1.0, ya=0.0, yb=0.0, args=1.0),
            None,
        ),
    ):
        timer = Timer()
        result = solve(problem, **options)
        wall = timer()
        pred = result.model.predict(ts)
        reference = problem.solve(ts)
        rows = {
            "relative L2 vs shooting reference": float(
                odefit.relative_l2(pred, reference)
            ),
        }
        if exact is not None:
            rows["relative L2 vs exact sin(pi t)"] = float(
                odefit.relative_l2(pred, exact)
            )
        rows |= {
            "y(0), y(1)": f"{float(pred[0]):.1e}, {float(pred[-1]):.1e} (exact)",
            "steps": f"{adam_steps} Adam + {result.steps} L-BFGS",
            "stop reason": result.stop_reason.split(":")[0],
            "dtype": str(pred.dtype),
            "wall time [s]": f"{wall:.1f}",
        }
        report(
            "BVP y'' = -pi^2 sin(pi t)" if name == "sine" else "Bratu y'' = -e^y",
            rows,
        )
        if plot:
            odefit.plot_fit(
                result,
                ts=ts,
                reference=reference,
                title=f"BVP ({name})",
                path=OUTPUT / f"bvp_{name}.png",
            )
        out[name] = rows["relative L2 vs shooting reference"]
    return {"relative_l2": out["sine"], "relative_l2_bratu": out["bratu"]}


SMOKE = dict(adam_steps=100, lbfgs_steps=50, width=16, points=32, progress=False)

if __name__ == "__main__":
    run(main, SMOKE)
