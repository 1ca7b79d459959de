"""An inverse problem: recover the four Lotka-Volterra rates

    x' = alpha x - beta x z,    z' = -gamma z + delta x z,    (x, z)(0) = (1, 1),

from 40 observations of (x, z) on [0, 5], with 2% multiplicative Gaussian noise,
every rate starting at half its true value (1.5, 1, 3, 1).

Each rate is an `odefit.Unknown(..., positive=True)` (trained as its logarithm, so
it stays positive); `fit` learns them jointly with a PINN that must both satisfy
the ODE with those rates and pass through the data. `FitResult.args` holds the
identified values. An Adam warm-up, then L-BFGS (`odefit.LBFGS`) on a fixed
grid. The same run without noise shows how far the method goes when the data are
exact. Runs in float64: identifying rates to a fraction of a per cent needs it.

Then 95% confidence intervals for the rates: a short Levenberg-Marquardt polish
with the residual weighted 100 times the data (which holds the network to the ODE),
`odefit.parameter_intervals` on it (a Laplace approximation over the network's
weights and the rates, the noise level estimated from the misfit), and beside them
the classical intervals of `odefit.classical_intervals` (the rates fit by least
squares on a diffrax solve). Both kinds assume noise of one size for every value;
the noise here is a percentage of each value, so on this data set the true rates
fall outside some intervals of both methods alike. `benchmarks/calibration.py`
measures how often the intervals cover the truth when the noise is of one size."""

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402
from _cli import OUTPUT, Timer, report, run  # noqa: E402

import odefit  # noqa: E402

TRUE = (1.5, 1.0, 3.0, 1.0)
NAMES = ("alpha", "beta", "gamma", "delta")


def lotka_volterra(t, y, args):
    alpha, beta, gamma, delta = args
    x, z = y
    return jnp.stack([alpha * x - beta * x * z, -gamma * z + delta * x * z])


def identify(
    noise,
    *,
    observations,
    adam_steps,
    lbfgs_steps,
    width,
    depth,
    points,
    seed,
    progress,
):
    t1, y0 = 5.0, jnp.array([1.0, 1.0])
    truth = odefit.IVP(lotka_volterra, t0=0.0, t1=t1, y0=y0, args=TRUE)
    ts = jnp.linspace(0.0, t1, observations)
    clean = truth.solve(ts)
    ys = clean * (1 + noise * jr.normal(jr.key(seed + 100), clean.shape))
    data = odefit.Observations(ts, ys)

    guess = tuple(odefit.Unknown(0.5 * v, positive=True) for v in TRUE)
    problem = odefit.IVP(lotka_volterra, t0=0.0, t1=t1, y0=y0, args=guess)
    model = odefit.PINN(problem, width=width, depth=depth, key=jr.key(seed))
    timer = Timer()
    warm = odefit.fit(
        problem,
        model,
        steps=adam_steps,
        observations=data,
        key=jr.key(seed + 1),
        progress=progress,
    )
    # Continue from the warm-up's model and its learned rates (`result.problem`).
    result = odefit.fit(
        warm.problem,
        warm.model,
        steps=lbfgs_steps,
        optimizer=odefit.LBFGS(),
        collocation=odefit.Grid(points),
        observations=data,
        key=jr.key(seed + 2),
        progress=progress,
    )
    wall = timer()
    return odefit.join_results([warm, result]), truth, data, wall


def intervals(result, data, *, polish_steps, points, progress):
    """Intervals on the rates: a Levenberg-Marquardt polish that holds the network
    to the ODE, the Laplace intervals on it, and the classical ones."""
    weights = {"residual": 100.0}
    polished = odefit.fit(
        result.problem,
        result.model,
        steps=polish_steps,
        optimizer=odefit.LevenbergMarquardt(points=points),
        observations=data,
        weights=weights,
        key=jr.key(3),
        progress=progress,
    )
    laplace = odefit.parameter_intervals(
        polished, data, collocation=odefit.Grid(points), weights=weights
    )
    classical = odefit.classical_intervals(polished.problem, data)
    return laplace, classical


def main(
    *,
    noises: tuple[float, ...] = (0.02, 0.0),
    observations: int = 40,
    adam_steps: int = 3000,
    lbfgs_steps: int = 1000,
    width: int = 32,
    depth: int = 3,
    points: int = 256,
    polish_steps: int = 40,
    seed: int = 0,
    progress: bool = True,
    plot: bool = True,
) -> dict:
    out = {}
    runs = []
    for noise in noises:
        result, truth, data, wall = identify(
            noise,
            observations=observations,
            adam_steps=adam_steps,
            lbfgs_steps=lbfgs_steps,
            width=width,
            depth=depth,
            points=points,
            seed=seed,
            progress=progress,
        )
        estimate = np.array(result.args)
        errors = np.abs(estimate / np.array(TRUE) - 1)
        ts = jnp.linspace(0.0, truth.t1, 501)
        rows = {
            f"{name} (true {true:g}, start {0.5 * true:g})": (
                f"{value:.5f}  error {100 * err:.3f}%"
            )
            for name, true, value, err in zip(
                NAMES, TRUE, estimate, errors, strict=True
            )
        }
        rows |= {
            "largest parameter error [%]": f"{100 * errors.max():.3f}",
            "relative L2 trajectory vs diffrax": float(
                odefit.relative_l2(result.model.predict(ts), truth.solve(ts))
            ),
            "steps": f"{adam_steps} Adam + {result.steps} L-BFGS",
            "stop reason": result.stop_reason.split(":")[0],
            "wall time [s]": f"{wall:.1f}",
        }
        report(
            f"inverse Lotka-Volterra, {observations} observations, "
            f"{100 * noise:g}% noise",
            rows,
        )
        out[f"max_parameter_error_noise_{noise:g}"] = float(errors.max())
        bounds = None
        if noise > 0:
            laplace, classical = intervals(
                result,
                data,
                polish_steps=polish_steps,
                points=points,
                progress=progress,
            )
            ratio = np.asarray(
                (laplace.upper - laplace.lower) / (classical.upper - classical.lower)
            )
            report(
                f"95% intervals, {100 * noise:g}% noise (PINN Laplace | classical)",
                {
                    f"{name} (true {true:g})": (
                        f"[{lo:.4f}, {hi:.4f}] | [{clo:.4f}, {chi:.4f}]"
                    )
                    for name, true, lo, hi, clo, chi in zip(
                        NAMES,
                        TRUE,
                        np.asarray(laplace.lower),
                        np.asarray(laplace.upper),
                        np.asarray(classical.lower),
                        np.asarray(classical.upper),
                        strict=True,
                    )
                }
                | {
                    "noise estimate (Laplace | classical)": (
                        f"{float(laplace.noise):.4g} | {float(classical.noise):.4g}"
                    ),
                    "effective parameters": f"{laplace.effective_parameters:.1f}",
                    "width ratio Laplace / classical": ", ".join(
                        f"{x:.2f}" for x in ratio
                    ),
                    "true rates inside the Laplace intervals": (
                        f"{int(laplace.covers(TRUE).sum())} of 4"
                    ),
                },
            )
            out[f"interval_width_ratio_noise_{noise:g}"] = [float(x) for x in ratio]
            bounds = (np.asarray(laplace.lower), np.asarray(laplace.upper))
        runs.append((noise, result, truth, data, estimate, bounds))
    if plot:
        draw(runs, OUTPUT / "inverse_lotka_volterra.png")
    return out


def draw(runs, path):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(runs) + 1, figsize=(5 * (len(runs) + 1), 4), constrained_layout=True
    )
    for ax, (noise, result, truth, data, *_) in zip(axes, runs, strict=False):
        ts = jnp.linspace(0.0, truth.t1, 501)
        ref = np.asarray(truth.solve(ts))
        pred = np.asarray(result.model.predict(ts))
        for i, (label, colour) in enumerate((("prey x", "C0"), ("predator z", "C1"))):
            ax.plot(
                ts, ref[:, i], color=colour, lw=3, alpha=0.35, label=f"{label} true"
            )
            ax.plot(ts, pred[:, i], color=colour, lw=1.2, ls="--", label="PINN")
            ax.plot(data.ts, data.ys[:, i], "o", color=colour, ms=3, label="data")
        ax.set(xlabel="t", title=f"{100 * noise:g}% noise")
        ax.legend(fontsize="x-small", ncol=3)
    ax = axes[-1]
    width = 0.8 / len(runs)
    for k, (noise, *_, estimate, bounds) in enumerate(runs):
        centre = 100 * (estimate / np.array(TRUE) - 1)
        ax.bar(
            np.arange(4) + k * width,
            centre,
            width,
            label=f"{100 * noise:g}% noise",
        )
        if bounds is not None:
            # The intervals of the polished fit, drawn from lower to upper end.
            lower, upper = (100 * (b / np.array(TRUE) - 1) for b in bounds)
            ax.errorbar(
                np.arange(4) + k * width,
                (lower + upper) / 2,
                yerr=(upper - lower) / 2,
                fmt="none",
                ecolor="k",
                capsize=3,
                label="95% interval",
            )
    ax.axhline(0.0, color="k", lw=0.8)
    ax.axhline(-50.0, color="grey", lw=0.8, ls=":", label="start (-50%)")
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_xticks(np.arange(4) + 0.4 - width / 2, NAMES)
    ax.set(ylabel="identified - true [% of true]", title="identified rates")
    ax.legend(fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


SMOKE = dict(
    noises=(0.02,),
    adam_steps=100,
    lbfgs_steps=30,
    width=16,
    depth=2,
    points=64,
    polish_steps=5,
    progress=False,
)

if __name__ == "__main__":
    run(main, SMOKE)
