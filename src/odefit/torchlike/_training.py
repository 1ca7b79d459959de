"""The PINN training loop written by hand, in JAX and in PyTorch, from the same
weights: the cross-check behind the side-by-side loops of
`docs/grad-vs-backward.md`.

PyTorch: `optimizer.zero_grad()`, the loss with `autograd.grad(...,
create_graph=True)`, `loss.backward()`, `optimizer.step()`. JAX: the trainable
part of the model split off with `eqx.partition`, `eqx.filter_value_and_grad` of
`odefit.loss`, `optimizer.update`, `eqx.apply_updates`. Same problem, ansatz, fixed
collocation points and Adam, float64: every weight agrees to rounding.
"""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

from .._losses import loss
from .._models.pinn import PINN

STEPS = 10
LEARNING_RATE = 1e-2
POINTS = 32


def network(model: PINN):
    """The model's network (`model.network`, or `model.mlp` where that is its
    name)."""
    net = getattr(model, "network", None)
    return net if net is not None else model.mlp


def jax_loop(model: PINN, problem, ts, *, steps=STEPS, lr=LEARNING_RATE):
    """The hand-written JAX loop: returns the trained model and the loss before
    each step."""
    params, static = eqx.partition(model, model.trainable())
    optimizer = optax.adam(lr)
    opt_state = optimizer.init(params)

    @eqx.filter_jit
    def step(params, opt_state):
        value, grads = eqx.filter_value_and_grad(
            lambda p: loss(eqx.combine(p, static), problem, ts)
        )(params)
        # Optax's bias correction mixes integer and float arrays, which JAX's
        # strict type promotion (odefit's tests use it) would refuse.
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = optimizer.update(grads, opt_state, params)
        return eqx.apply_updates(params, updates), opt_state, value

    losses = []
    for _ in range(steps):
        params, opt_state, value = step(params, opt_state)
        losses.append(value)
    return eqx.combine(params, static), np.asarray(losses)


def torch_loop(model: PINN, problem, torch_rhs, ts, *, steps=STEPS, lr=LEARNING_RATE):
    """The same loop as a PyTorch user writes it, on a copy of the weights: returns
    the trained `torch.nn.Sequential` and the loss before each step."""
    from ._torch_side import _import_torch, torch_net, torch_pinn_loss

    torch = _import_torch()
    net = torch_net(network(model))
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        value, _ = torch_pinn_loss(net, model, problem, torch_rhs, ts)
        value.backward()
        optimizer.step()
        losses.append(value.item())
    return net, np.asarray(losses)


def compare(with_torch: bool, ode) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """odefit's values and PyTorch's after `STEPS` Adam steps of both loops."""
    problem, torch_rhs = ode()
    ts = jnp.linspace(problem.t0, problem.t1, POINTS)
    model = PINN(problem, width=16, depth=2, key=jr.key(3))
    trained, losses = jax_loop(model, problem, ts)
    ours: dict[str, Any] = {f"loss at steps 1..{STEPS}": losses}
    for k, layer in enumerate(network(trained).layers):
        ours[f"after {STEPS} steps: layers[{k}].weight"] = layer.weight
        ours[f"after {STEPS} steps: layers[{k}].bias"] = layer.bias
    theirs = None
    if with_torch:
        net, torch_losses = torch_loop(model, problem, torch_rhs, ts)
        theirs = {f"loss at steps 1..{STEPS}": torch_losses}
        linears = [layer for layer in net if hasattr(layer, "weight")]
        for k, layer in enumerate(linears):
            theirs[f"after {STEPS} steps: layers[{k}].weight"] = layer.weight
            theirs[f"after {STEPS} steps: layers[{k}].bias"] = layer.bias
    return ours, theirs
