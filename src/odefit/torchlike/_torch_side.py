"""The PyTorch side of the cross-checks: PyTorch is imported only when a check
runs, and the modules that need it (the cross-checks, the threads and training
comparisons) share these helpers without importing one another."""

import equinox as eqx
import numpy as np

from .._models.pinn import PINN
from .._problems import AbstractProblem
from .._unknown import resolve_args

INSTALL_HINT = 'pip install "odefit[torch]"'


def _import_torch():
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            f"The PyTorch cross-checks need PyTorch: {INSTALL_HINT}"
        ) from e
    return torch


def _f64(torch, x, requires_grad: bool = False):
    return torch.tensor(np.asarray(x), dtype=torch.float64, requires_grad=requires_grad)


def torch_net(mlp: eqx.nn.MLP):
    """A `torch.nn.Sequential` of `Linear`/`Tanh` layers holding `mlp`'s weights
    (both store a layer's weight as (out, in))."""
    torch = _import_torch()
    layers = []
    for k, linear in enumerate(mlp.layers):
        layer = torch.nn.Linear(
            linear.in_features, linear.out_features, dtype=torch.float64
        )
        with torch.no_grad():
            layer.weight.copy_(_f64(torch, linear.weight))
            layer.bias.copy_(_f64(torch, linear.bias))
        layers.append(layer)
        if k < len(mlp.layers) - 1:
            layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers)


def torch_pinn_loss(net, model: PINN, problem: AbstractProblem, torch_rhs, ts):
    """The PyTorch way to write the same PINN loss: `u(t)` from the network with
    the same ansatz, derivatives by `autograd.grad(..., create_graph=True)`, the
    mean of squared scaled residuals (plus the soft condition term when the
    conditions are not built in). Returns the loss and `(u, u', ...)`."""
    torch = _import_torch()
    t0, t1, order = problem.t0, problem.t1, problem.order
    scale = _f64(torch, np.ravel(model.scale))
    y0 = _f64(torch, np.ravel(problem.y0))
    dy0 = _f64(torch, np.ravel(problem.dy0)) if order == 2 else None
    hard = model.condition is not None
    dim = scale.shape[0]

    def u_of(t):
        s = (t - t0) / (t1 - t0)
        n = net((2 * s - 1).unsqueeze(1)) * scale
        if not hard:
            return n
        if order == 1:
            return y0 + s[:, None] * n
        return y0 + dy0 * (t - t0)[:, None] + s[:, None] ** 2 * n

    def d_dt(u, t):
        # One autograd.grad per state component: each row of u depends only on its
        # own t, so grad_outputs=ones gives du_k/dt at every point.
        return torch.stack(
            [
                torch.autograd.grad(
                    u[:, k], t, grad_outputs=torch.ones_like(u[:, k]), create_graph=True
                )[0]
                for k in range(dim)
            ],
            dim=1,
        )

    t = _f64(torch, ts, requires_grad=True)
    derivs = [u_of(t)]
    for _ in range(order):
        derivs.append(d_dt(derivs[-1], t))
    args = resolve_args(problem.args)
    rhs = torch_rhs(torch, t, *derivs[:-1], args)
    residual = (derivs[-1] - rhs) / (scale / (t1 - t0) ** order)
    loss = residual.pow(2).mean()
    if not hard:
        t_start = _f64(torch, [t0], requires_grad=True)
        at_start = [u_of(t_start)]
        if order == 2:
            at_start.append(d_dt(at_start[0], t_start))
        targets = (y0, dy0)[:order]
        mismatch = torch.cat(
            [(u - c)[0] for u, c in zip(at_start, targets, strict=True)]
        )
        loss = loss + (mismatch / scale.repeat(order)).pow(2).mean()
    return loss, derivs
