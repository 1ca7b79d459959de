"""NeuroDiffEq's runner, in its own environment (`.venvs/neurodiffeq`),
following its getting-started guide (NeuroDiffGym/neurodiffeq,
docs/getstart.ipynb, "Solving ODEs" with `neurodiffeq.solvers.Solver1D`):
`Solver1D(ode_system, conditions, t_min, t_max)` with the library's defaults,
one FCNN per unknown function (hidden units (32, 32), tanh), 32 training points
per epoch redrawn by `Generator1D(..., method="equally-spaced-noisy")`, 4
validation batches per epoch, Adam (PyTorch defaults, learning rate 1e-3);
initial values by `IVP(t_0, u_0)` / `IVP(t_0, u_0, u_0_prime)`, two-point
conditions by `DirichletBVP`, which NeuroDiffEq builds into the network output
(hard constraints); the library sets PyTorch's default dtype to float64 on import,
so it runs in float64. The solution is `solver.get_solution()` (the networks of the
best validation loss so far), as the guide reads it out.

The inverse problem is not run: `Solver1D` trains network weights only, and
NeuroDiffEq's documented route to parameters (README, "solution bundles") is a
different two-stage method: solve over a box of parameter values with
`BundleSolver1D`, then fit the parameters to the data.

    .venvs/neurodiffeq/bin/python benchmarks/peers/run_neurodiffeq.py --problem damped
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import common  # noqa: E402
import problems  # noqa: E402

INVERSE_REASON = (
    "no joint estimation of equation parameters: Solver1D trains network weights "
    "only; the documented inverse route (README, solution bundles) first solves "
    "over a box of parameter values with BundleSolver1D, then fits the parameters "
    "to the data, a two-stage method over a 4-D parameter box"
)


def main(argv=None):
    args = common.parser(__doc__.splitlines()[0]).parse_args(argv)
    from importlib.metadata import version as _version

    import numpy as np
    import torch
    from neurodiffeq import diff
    from neurodiffeq.conditions import IVP, DirichletBVP
    from neurodiffeq.solvers import Solver1D

    # The package's own `__version__` string lags its release number.
    version = _version("neurodiffeq")
    spec = problems.problem(args.problem)
    name = args.problem
    if name == "inverse_lotka_volterra":
        common.unsupported(args, "neurodiffeq", "tutorial", version, INVERSE_REASON)
        return
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    ref = problems.reference(name)
    t0, t1 = spec["t0"], spec["t1"]

    if name == "lagaris1":

        def system(u, t):
            q = (1 + 3 * t**2) / (1 + t + t**3)
            return [diff(u, t) - (t**3 + 2 * t + t**2 * q - (t + q) * u)]

    elif name == "logistic":

        def system(u, t):
            return [diff(u, t) - u * (1 - u)]

    elif name == "lotka_volterra":

        def system(x, y, t):
            return [diff(x, t) - (x - x * y), diff(y, t) - (-y + x * y)]

    elif name == "damped":

        def system(u, t):
            return [diff(u, t, order=2) + 4 * diff(u, t) + 400 * u]

    elif name == "pendulum":

        def system(u, t):
            return [diff(u, t, order=2) + torch.sin(u)]

    elif name == "harmonic_long":

        def system(u, t):
            return [diff(u, t, order=2) + u]

    elif name == "bratu":

        def system(u, t):
            return [diff(u, t, order=2) + torch.exp(u)]

    else:  # pragma: no cover
        raise ValueError(name)

    if spec.get("bvp"):
        conditions = [DirichletBVP(t0, spec["y0"][0], t1, spec["y1"][0])]
    elif spec["order"] == 2:
        conditions = [IVP(t0, spec["y0"][0], spec["dy0"][0])]
    else:
        conditions = [IVP(t0, value) for value in spec["y0"]]
    solver = Solver1D(ode_system=system, conditions=conditions, t_min=t0, t_max=t1)
    # NeuroDiffEq sets PyTorch's default dtype to float64 when imported.
    precision = str(torch.get_default_dtype()).replace("torch.", "")
    ts = ref["ts"].astype(precision)

    def evaluate():
        # Before the first epoch there is no best network yet.
        best = solver.best_nets is not None
        out = solver.get_solution(best=best)(ts, to_numpy=True)
        if isinstance(out, list | tuple):
            out = np.stack([np.ravel(o) for o in out], axis=1)
        return out

    rec = common.Recorder(args.budget, evaluate, ref["ys"])

    def clock(solver):
        rec.stop(1)
        if rec.done:
            solver._stop_training = True
        rec.start()

    rec.record()
    rec.start()
    solver.fit(max_epochs=10**9, callbacks=[clock], tqdm_file=None)
    rec.finish()
    row = {
        "problem": name,
        "library": "neurodiffeq",
        "mode": "tutorial",
        "version": version,
        "torch": torch.__version__,
        "status": "ok",
        "budget": args.budget,
        "settings": {
            "precision": precision,
            "net": "FCNN (32, 32) tanh per function",
            "optimizer": "adam 1e-3",
            "points": "32 redrawn per epoch (+4x32 validation)",
        },
        **rec.summary(),
    }
    common.emit(row, args.out)


if __name__ == "__main__":
    main()
