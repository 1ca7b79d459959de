"""A three-panel figure of a fit: solution against reference, pointwise error, and
loss history. matplotlib is imported only when a figure is drawn."""

from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, Float

from ._problems import AbstractProblem
from ._result import FitResult


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Plotting needs matplotlib: `pip install 'odefit[examples]'`."
        ) from e
    return plt


def plot_fit(
    result: FitResult,
    problem: AbstractProblem | None = None,
    *,
    ts: Float[ArrayLike, " times"] | None = None,
    reference: Float[ArrayLike, "times ..."] | None = None,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    path: str | Path | None = None,
):
    """Draws a fit: the model against the reference, the pointwise error on a log
    axis, and the loss history (total and per term) on a log axis.

    **Arguments:**

    - `result`: what [`odefit.fit`][] returned.
    - `problem`: the problem; default `result.problem`. Its `solve` gives the
        reference when `reference` is not passed.
    - `ts`: where to evaluate; default 512 points on $[t_0, t_1]$.
    - `reference`: the reference solution on `ts`; default `problem.solve(ts)`.
    - `labels`: names of the state components (e.g. `["u", "v"]`).
    - `title`: the figure title.
    - `path`: if given, the figure is saved there as PNG (folders are created).

    **Returns:** the matplotlib `Figure`.
    """
    plt = _pyplot()
    problem = result.problem if problem is None else problem
    if ts is None:
        ts = jnp.linspace(problem.t0, problem.t1, 512, dtype=problem.state.dtype)
    ts = jnp.asarray(ts)
    pred = np.asarray(jax.vmap(result.model)(ts)).reshape(ts.shape[0], -1)
    ref = problem.solve(ts) if reference is None else reference
    ref = np.asarray(ref).reshape(ts.shape[0], -1)
    if labels is None:
        labels = (
            ["y"] if ref.shape[1] == 1 else [f"y[{i}]" for i in range(ref.shape[1])]
        )
    t = np.asarray(ts)

    fig, axes = plt.subplots(1, 3, figsize=(15, 4), constrained_layout=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, label in enumerate(labels):
        c = colours[i % len(colours)]
        axes[0].plot(
            t, ref[:, i], color=c, lw=3, alpha=0.35, label=f"{label} reference"
        )
        axes[0].plot(t, pred[:, i], color=c, lw=1.2, ls="--", label=f"{label} odefit")
        err = np.abs(pred[:, i] - ref[:, i])
        # Errors below rounding (e.g. exactly zero at an imposed initial value)
        # are drawn at the rounding floor, not at 1e-300.
        floor = np.finfo(pred.dtype).eps * max(float(np.max(np.abs(ref[:, i]))), 1e-30)
        axes[1].semilogy(t, np.maximum(err, floor), color=c, label=label)
    axes[0].set(xlabel="t", title="solution")
    axes[0].legend(fontsize="small")
    axes[1].set(xlabel="t", title="pointwise |error|")
    axes[1].legend(fontsize="small")
    for name, values in result.history.items():
        if name == "loss" or name in ("residual", "conditions", "data"):
            axes[2].semilogy(values, lw=1.5 if name == "loss" else 0.8, label=name)
    axes[2].set(xlabel="step", title="loss")
    axes[2].legend(fontsize="small")
    rel = np.linalg.norm(pred - ref) / np.linalg.norm(ref)
    fig.suptitle(
        (f"{title} — " if title else "") + f"relative L2 error {rel:.2e}", fontsize=12
    )
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    return fig
