"""DeepXDE's runner (PyTorch backend), in its own environment
(`.venvs/deepxde`), following DeepXDE's ODE examples:

- forward problems: lululxvi/deepxde, examples/pinn_forward/ode_system.py (an
  FNN [1] + [50] * 3 + [outputs], tanh, Glorot uniform; `dde.data.PDE` on a
  `TimeDomain` with 35 residual points and 2 boundary points; Adam, learning
  rate 1e-3) and examples/pinn_forward/ode_2nd.py (second order: an `IC` for the
  value and an `OperatorBC` for the slope);
- the inverse problem: examples/pinn_inverse/Lorenz_inverse.py (`dde.Variable`
  parameters, observations as `PointSetBC`s that are also anchors, 400 residual
  points, an FNN [1] + [40] * 3 + [outputs], Adam 1e-3 with the variables as
  external trainable variables).

Deviation: the examples fix 35 residual points on [0, 10]; here the density is
kept (3.5 points per unit of time, at least 35), so that the long horizon is not
left with 35 points over 8 periods. The BVP uses `DirichletBC` on an `Interval`,
as DeepXDE's Poisson_Dirichlet_1d.py does.

    .venvs/deepxde/bin/python benchmarks/peers/run_deepxde.py --problem damped
"""

import math
import os
import pathlib
import sys

os.environ.setdefault("DDE_BACKEND", "pytorch")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import common  # noqa: E402
import problems  # noqa: E402


def _constant(value):
    return lambda x: value


def main(argv=None):
    args = common.parser(__doc__.splitlines()[0]).parse_args(argv)
    import deepxde as dde
    import numpy as np
    import torch

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    dde.config.set_random_seed(args.seed)
    spec = problems.problem(args.problem)
    ref = problems.reference(args.problem)
    name = args.problem
    t0, t1 = spec["t0"], spec["t1"]
    dim = ref["ys"].shape[1]
    jac, hess = dde.grad.jacobian, dde.grad.hessian
    variables = []

    if name == "lagaris1":

        def ode(t, y):
            q = (1 + 3 * t**2) / (1 + t + t**3)
            return jac(y, t) - (t**3 + 2 * t + t**2 * q - (t + q) * y)

    elif name == "logistic":

        def ode(t, y):
            return jac(y, t) - y * (1 - y)

    elif name == "lotka_volterra":

        def ode(t, y):
            x, v = y[:, 0:1], y[:, 1:2]
            return [
                jac(y, t, i=0) - (x - x * v),
                jac(y, t, i=1) - (-v + x * v),
            ]

    elif name == "inverse_lotka_volterra":
        variables = [dde.Variable(float(g)) for g in spec["guess"]]
        a, b, c, d = variables

        def ode(t, y):
            x, v = y[:, 0:1], y[:, 1:2]
            return [
                jac(y, t, i=0) - (a * x - b * x * v),
                jac(y, t, i=1) - (-c * v + d * x * v),
            ]

    elif name == "damped":

        def ode(t, y):
            return hess(y, t) + 4 * jac(y, t) + 400 * y

    elif name == "pendulum":

        def ode(t, y):
            return hess(y, t) + torch.sin(y)

    elif name == "harmonic_long":

        def ode(t, y):
            return hess(y, t) + y

    elif name == "bratu":

        def ode(t, y):
            return hess(y, t) + torch.exp(y)

    else:  # pragma: no cover
        raise ValueError(name)

    inverse = bool(variables)
    bcs = []
    if spec.get("bvp"):
        geom = dde.geometry.Interval(t0, t1)
        bcs.append(
            dde.icbc.DirichletBC(
                geom,
                lambda x: np.where(np.isclose(x, t0), spec["y0"][0], spec["y1"][0]),
                lambda x, on_boundary: on_boundary,
            )
        )
    else:
        geom = dde.geometry.TimeDomain(t0, t1)
        for i, value in enumerate(spec["y0"]):
            bcs.append(
                dde.icbc.IC(
                    geom,
                    _constant(value),
                    lambda _, on_initial: on_initial,
                    component=i,
                )
            )
        if spec["order"] == 2:
            slope = spec["dy0"][0]

            def on_left(t, on_initial):
                return on_initial and np.isclose(t[0], t0)

            bcs.append(
                dde.icbc.OperatorBC(
                    geom, lambda x, y, _: jac(y, x, i=0, j=None) - slope, on_left
                )
            )
    anchors = None
    if inverse:
        obs_t = ref["obs_ts"].reshape(-1, 1)
        for i in range(dim):
            bcs.append(
                dde.icbc.PointSetBC(obs_t, ref["obs_ys"][:, i : i + 1], component=i)
            )
        anchors = obs_t
        num_domain, width = 400, 40
    else:
        num_domain, width = max(35, math.ceil(3.5 * (t1 - t0))), 50
    data = dde.data.PDE(
        geom, ode, bcs, num_domain=num_domain, num_boundary=2, anchors=anchors
    )
    net = dde.nn.FNN([1] + [width] * 3 + [dim], "tanh", "Glorot uniform")
    model = dde.Model(data, net)
    if inverse:
        model.compile("adam", lr=0.001, external_trainable_variables=variables)
    else:
        model.compile("adam", lr=0.001)

    ts = ref["ts"].reshape(-1, 1).astype(np.float32)
    rec = common.Recorder(args.budget, lambda: model.predict(ts), ref["ys"])

    class Clock(dde.callbacks.Callback):
        """Stops the clock around each evaluation; stops training at the budget."""

        def on_train_begin(self):
            rec.start()

        def on_batch_end(self):
            rec.stop(1)
            if rec.done:
                self.model.stop_training = True
            rec.start()

    rec.record()
    model.train(iterations=10**9, display_every=10**9, verbose=0, callbacks=[Clock()])
    rec.finish()
    row = {
        "problem": name,
        "library": "deepxde",
        "mode": "tutorial",
        "version": dde.__version__,
        "torch": torch.__version__,
        "status": "ok",
        "budget": args.budget,
        "settings": {
            "precision": "float32",
            "net": f"FNN [1]+[{width}]*3+[{dim}] tanh",
            "optimizer": "adam 1e-3",
            "points": num_domain,
        },
        **rec.summary(),
    }
    if inverse:
        found = [float(v.detach().cpu()) for v in variables]
        row["parameters"] = found
        row["parameter_error"] = max(
            abs(f - t) / abs(t) for f, t in zip(found, spec["true_params"], strict=True)
        )
    common.emit(row, args.out)


if __name__ == "__main__":
    main()
