"""A neural ODE learns the Lotka-Volterra dynamics

    x' = 1.5 x - x z,    z' = -3 z + x z,

from four observed trajectories on [0, 5] (starting at x = 1, 1.5, 2, 2.5 and
z = 1; the outermost orbit takes 3.3 time units, so the data cover about one and
a half periods), then extrapolates past the data: the error over the next half
period measures whether it learned the dynamics or only the curves.

`odefit.NeuralODE` is an MLP vector field integrated by diffrax (Tsit5, adaptive
steps, gradients by recursive checkpointing), here with `initial_states`: the four
trajectories are integrated side by side by one solve. `fit` trains it on the data
term alone. Several orbits pin the vector field down in a band of the phase plane;
from a single orbit the fit is as good on the data, but the extrapolation drifts
off the orbit into a region the data never constrained and often blows up.

Fitting long oscillating trajectories from scratch tends to stall on curves
through the mean, so the fit grows the time window: L-BFGS stages
(`odefit.LBFGS`) on the first sixth, third, ..., and all of the data. Every
stage uses the same number of observation times (every k-th of the first k
sixths), so the compiled step is reused. Runs in float64."""

import jax

jax.config.update("jax_enable_x64", True)

import diffrax as dfx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402
from _cli import OUTPUT, Timer, report, run  # noqa: E402

import odefit  # noqa: E402

ARGS = (1.5, 1.0, 3.0, 1.0)
INITIAL_STATES = ((1.0, 1.0), (1.5, 1.0), (2.0, 1.0), (2.5, 1.0))


def lotka_volterra(t, y, args):
    alpha, beta, gamma, delta = args
    x, z = y
    return jnp.stack([alpha * x - beta * x * z, -gamma * z + delta * x * z])


def reference(y0s, t1, ts):
    """diffrax reference of every trajectory: shape (len(ts), trajectories, 2)."""
    return jnp.stack(
        [
            odefit.IVP(lotka_volterra, t0=0.0, t1=t1, y0=y0, args=ARGS).solve(ts)
            for y0 in y0s
        ],
        axis=1,
    )


def period(problem: odefit.IVP) -> float:
    """The orbit's period, from successive maxima of x along the reference."""
    ts = jnp.linspace(problem.t0, problem.t0 + 20.0, 20_001)
    x = np.asarray(problem.solve(ts)[:, 0])
    peaks = np.flatnonzero((x[1:-1] > x[:-2]) & (x[1:-1] >= x[2:])) + 1
    return float(np.mean(np.diff(np.asarray(ts)[peaks])))


def main(
    *,
    t1: float = 5.0,
    observations: int = 120,
    stages: int = 6,
    steps: int = 500,
    width: int = 32,
    depth: int = 2,
    noise: float = 0.0,
    seed: int = 0,
    progress: bool = True,
    plot: bool = True,
) -> dict:
    if observations % stages:
        raise ValueError("`observations` must be a multiple of `stages`.")
    y0s = jnp.array(INITIAL_STATES)
    # The problem gives the interval and the scale; the model integrates all four
    # trajectories from `initial_states`.
    problem = odefit.IVP(lotka_volterra, t0=0.0, t1=t1, y0=y0s[0], args=ARGS)
    ts = jnp.linspace(0.0, t1, observations)
    ys = reference(y0s, t1, ts)  # (observations, trajectories, 2)
    ys = ys * (1 + noise * jr.normal(jr.key(seed + 100), ys.shape))

    timer = Timer()
    model = odefit.NeuralODE(
        problem,
        width=width,
        depth=depth,
        initial_states=y0s,
        solver=dfx.Tsit5(),
        stepsize_controller=dfx.PIDController(rtol=1e-6, atol=1e-8),
        adjoint=dfx.RecursiveCheckpointAdjoint(),
        key=jr.key(seed),
    )
    # odefit's L-BFGS puts the differentiated solve into the compiled step once
    # (optax.lbfgs's line search: three times), which halves compilation.
    lbfgs = odefit.LBFGS()
    per_stage = observations // stages
    history = []
    for k in range(1, stages + 1):
        window = slice(0, k * per_stage, k)
        result = odefit.fit(
            problem,
            model,
            steps=steps,
            optimizer=lbfgs,
            observations=odefit.Observations(ts[window], ys[window]),
            key=jr.key(seed + k),
            progress=progress,
        )
        model = result.model
        history.append(result.history["loss"])
    wall = timer()

    p = period(problem)  # of the outermost, slowest orbit
    t_end = t1 + p
    dense = jnp.linspace(0.0, t_end, 2001)
    truth = reference(y0s, t_end, dense)
    pred = model.predict(dense)
    inside = dense <= t1
    half = (dense >= t1) & (dense <= t1 + p / 2)
    later = dense >= t1
    # Along the true orbits, how close is the learned vector field to the true one?
    states = truth[inside].reshape(-1, 2)
    true_field = jax.vmap(lambda y: lotka_volterra(0.0, y, ARGS))(states)
    learned_field = model.vector_field(0.0, states)
    half_name = f"extrapolation [{t1:g}, {t1 + p / 2:.2f}] (next half period)"
    rows = {
        "relative L2 on the data interval": float(
            odefit.relative_l2(pred[inside], truth[inside])
        ),
        half_name: float(odefit.relative_l2(pred[half], truth[half])),
        "  of which the outermost orbit": float(
            odefit.relative_l2(pred[half, 0], truth[half, 0])
        ),
        f"extrapolation [{t1:g}, {t_end:.2f}] (next full period)": float(
            odefit.relative_l2(pred[later], truth[later])
        ),
        "relative L2 vector field on the orbits": float(
            odefit.relative_l2(learned_field, true_field)
        ),
        "period of the outermost orbit": f"{p:.3f}",
        "observations": (
            f"{observations} times x {len(INITIAL_STATES)} trajectories "
            f"({100 * noise:g}% noise)"
        ),
        "steps": f"{stages} stages x {steps} L-BFGS",
        "stop reason": result.stop_reason.split(":")[0],
        "wall time [s]": f"{wall:.1f}",
    }
    report("neural ODE, Lotka-Volterra", rows)
    if plot:
        draw(dense, truth, pred, ts, ys, t1, history, OUTPUT / "neural_ode.png")
    return {"extrapolation_half_period": rows[half_name], "wall_time": wall}


def draw(dense, truth, pred, ts, ys, t1, history, path):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), constrained_layout=True)
    ax = axes[0]
    for i, (label, colour) in enumerate((("prey x", "C0"), ("predator z", "C1"))):
        ax.plot(dense, truth[:, 0, i], color=colour, lw=3, alpha=0.35, label=label)
        ax.plot(dense, pred[:, 0, i], color=colour, lw=1.2, ls="--", label="neural ODE")
        ax.plot(ts, ys[:, 0, i], ".", color=colour, ms=3)
    ax.axvspan(t1, float(dense[-1]), color="grey", alpha=0.15, label="extrapolation")
    ax.set(xlabel="t", title="outermost trajectory (dots: data)")
    ax.legend(fontsize="x-small", ncol=2)
    ax = axes[1]
    for j in range(truth.shape[1]):
        colour = f"C{j}"
        ax.plot(truth[:, j, 0], truth[:, j, 1], color=colour, lw=3, alpha=0.3)
        ax.plot(pred[:, j, 0], pred[:, j, 1], color=colour, ls="--", lw=1)
        ax.plot(ys[:, j, 0], ys[:, j, 1], ".", color=colour, ms=2)
    ax.set(
        xlabel="prey x",
        ylabel="predator z",
        title="phase plane (thick: truth, dashed: neural ODE)",
    )
    ax = axes[2]
    start = 0
    for k, loss in enumerate(history, 1):
        ax.semilogy(np.arange(start, start + len(loss)), loss, label=f"stage {k}")
        start += len(loss)
    ax.set(xlabel="step", title="data loss (growing window)")
    ax.legend(fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


SMOKE = dict(observations=40, stages=2, steps=20, width=8, progress=False)

if __name__ == "__main__":
    run(main, SMOKE)
