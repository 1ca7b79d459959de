"""The cross-checks against real PyTorch, shared by the tests and by
`python -m odefit.torchlike`.

Each case computes odefit's numbers and, when PyTorch is installed, PyTorch's
numbers for the same inputs and weights, and returns one `Row` per compared
quantity. PyTorch is imported lazily, inside the functions that use it: importing
this module (or `odefit.torchlike`) never imports torch.
"""

import importlib.util
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._derivatives import derivatives
from .._losses import loss
from .._models.pinn import PINN
from .._problems import IVP, AbstractProblem, SecondOrderIVP
from . import _threads, _training
from ._backward import backward, zero_grad
from ._grad import grad
from ._torch_side import (
    INSTALL_HINT as INSTALL_HINT,
    _f64,
    _import_torch as _import_torch,
    torch_net as torch_net,
    torch_pinn_loss as torch_pinn_loss,
)

TOLERANCE = 1e-10


class Row(NamedTuple):
    """One compared quantity: PyTorch's value, odefit's value (each a float64
    NumPy array, or `None` for a `None` gradient) and the largest absolute
    difference (`None` when PyTorch was not run)."""

    case: str
    quantity: str
    torch: Any
    odefit: Any
    difference: float | None


Values = dict[str, Any]


class Case(NamedTuple):
    """A named comparison: `compute(with_torch)` returns odefit's values and
    PyTorch's (or `None` without PyTorch), keyed by quantity."""

    name: str
    compute: Callable[[bool], tuple[Values, Values | None]]

    def run(self, with_torch: bool) -> list[Row]:
        return _rows(self.name, *self.compute(with_torch))


def torch_available() -> bool:
    """Whether PyTorch is installed (without importing it)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def _check_x64() -> None:
    if not jax.config.read("jax_enable_x64"):
        raise RuntimeError(
            "The cross-checks compare float64 numbers; enable them first with "
            "jax.config.update('jax_enable_x64', True)."
        )


def _np(x) -> np.ndarray | None:
    if x is None:
        return None
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def difference(a, b) -> float:
    """Max |a - b|; 0 when both are `None`, infinite when only one is or the
    shapes differ."""
    if a is None or b is None:
        return 0.0 if a is None and b is None else float("inf")
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b), initial=0.0))


def _rows(case: str, ours: dict[str, Any], theirs: dict[str, Any] | None) -> list[Row]:
    rows = []
    for quantity, value in ours.items():
        value = _np(value)
        if theirs is None:
            rows.append(Row(case, quantity, None, value, None))
        else:
            other = _np(theirs[quantity])
            rows.append(Row(case, quantity, other, value, difference(other, value)))
    return rows


# -- the two-input example ---------------------------------------------------------


def _two_input(x1, x2):
    return x1**2 + 5 * x2


def _case_two_input_grad(with_torch: bool) -> tuple[Values, Values | None]:
    x1, x2 = jnp.asarray(2.0), jnp.asarray(3.0)
    g1, g2 = grad(_two_input, (x1, x2))
    ours = {"dy/dx1": g1, "dy/dx2": g2}
    theirs = None
    if with_torch:
        torch = _import_torch()
        t1, t2 = _f64(torch, 2.0, True), _f64(torch, 3.0, True)
        y = t1**2 + 5 * t2
        h1, h2 = torch.autograd.grad(y, (t1, t2))
        theirs = {"dy/dx1": h1, "dy/dx2": h2}
    return ours, theirs


def _case_two_input_backward(with_torch: bool) -> tuple[Values, Values | None]:
    x1, x2 = jnp.asarray(2.0), jnp.asarray(3.0)
    g1, g2 = backward(_two_input, (x1, x2))
    ours = {"x1.grad": g1, "x2.grad": g2}
    theirs = None
    if with_torch:
        torch = _import_torch()
        t1, t2 = _f64(torch, 2.0, True), _f64(torch, 3.0, True)
        (t1**2 + 5 * t2).backward()
        theirs = {"x1.grad": t1.grad, "x2.grad": t2.grad}
    return ours, theirs


# -- non-scalar outputs, unused inputs, accumulation, inputs= --------------------

_X = np.array([0.5, -1.0, 2.0])
_W = 1.5
_V = np.array([1.0, -2.0, 0.25])


def _case_grad_outputs(with_torch: bool) -> tuple[Values, Values | None]:
    x, w, v = jnp.asarray(_X), jnp.asarray(_W), jnp.asarray(_V)
    gx, gw = grad(lambda x, w: x**2 * w, (x, w), grad_outputs=v)
    hx, hw = grad(
        lambda x, w: (jnp.sin(x) * w, jnp.sum(x * w)),
        (x, w),
        grad_outputs=(v, None),
    )
    ours = {
        "y = x**2*w, v: dx": gx,
        "y = x**2*w, v: dw": gw,
        "(sin(x)*w, sum(x*w)), (v, None): dx": hx,
        "(sin(x)*w, sum(x*w)), (v, None): dw": hw,
    }
    theirs = None
    if with_torch:
        torch = _import_torch()
        tx, tw, tv = _f64(torch, _X, True), _f64(torch, _W, True), _f64(torch, _V)
        a = torch.autograd.grad(tx**2 * tw, (tx, tw), grad_outputs=tv)
        b = torch.autograd.grad(
            (torch.sin(tx) * tw, torch.sum(tx * tw)), (tx, tw), grad_outputs=(tv, None)
        )
        theirs = dict(zip(ours, (*a, *b), strict=True))
    return ours, theirs


def _case_unused(with_torch: bool) -> tuple[Values, Values | None]:
    x, w = jnp.asarray(_X), jnp.asarray(_W)

    def f(x, w):
        return jnp.sum(x**2)

    ours = {
        "allow_unused=True: dx": grad(f, (x, w), allow_unused=True)[0],
        "allow_unused=True: dw": grad(f, (x, w), allow_unused=True)[1],
        "materialize_grads=True: dw": grad(f, (x, w), materialize_grads=True)[1],
        "backward: w.grad": backward(f, (x, w))[1],
    }
    theirs = None
    if with_torch:
        torch = _import_torch()
        tx, tw = _f64(torch, _X, True), _f64(torch, _W, True)
        a = torch.autograd.grad(torch.sum(tx**2), (tx, tw), allow_unused=True)
        b = torch.autograd.grad(torch.sum(tx**2), (tx, tw), materialize_grads=True)
        torch.sum(tx**2).backward()
        theirs = dict(zip(ours, (a[0], a[1], b[1], tw.grad), strict=True))
    return ours, theirs


def _accumulated(x, w, calls: int):
    grads = None
    for _ in range(calls):
        grads = backward(lambda x, w: jnp.sum(jnp.sin(x) * w), (x, w), grads=grads)
    return grads


def _case_accumulate(with_torch: bool) -> tuple[Values, Values | None]:
    x, w = jnp.asarray(_X), jnp.asarray(_W)
    two, three = _accumulated(x, w, 2), _accumulated(x, w, 3)
    after_zero = backward(
        lambda x, w: jnp.sum(jnp.sin(x) * w), (x, w), grads=zero_grad(three)
    )
    ours = {
        "2 calls: x.grad": two[0],
        "2 calls: w.grad": two[1],
        "3 calls: x.grad": three[0],
        "3 calls: w.grad": three[1],
        "zero_grad, 1 call: w.grad": after_zero[1],
    }
    theirs = None
    if with_torch:
        torch = _import_torch()
        tx, tw = _f64(torch, _X, True), _f64(torch, _W, True)
        values = []
        for calls in (2, 1):  # 2 calls, then a third
            for _ in range(calls):
                torch.sum(torch.sin(tx) * tw).backward()
            values += [tx.grad.clone(), tw.grad.clone()]
        optimizer = torch.optim.SGD([tx, tw], lr=0.0)
        optimizer.zero_grad()
        torch.sum(torch.sin(tx) * tw).backward()
        theirs = dict(zip(ours, (*values, tw.grad), strict=True))
    return ours, theirs


def _case_inputs_restriction(with_torch: bool) -> tuple[Values, Values | None]:
    x1, x2 = jnp.asarray(2.0), jnp.asarray(3.0)
    g1, g2 = backward(_two_input, (x1, x2), wrt=(0,))
    ours = {"inputs=[x1]: x1.grad": g1, "inputs=[x1]: x2.grad": g2}
    theirs = None
    if with_torch:
        torch = _import_torch()
        t1, t2 = _f64(torch, 2.0, True), _f64(torch, 3.0, True)
        torch.autograd.backward(t1**2 + 5 * t2, inputs=[t1])
        theirs = {"inputs=[x1]: x1.grad": t1.grad, "inputs=[x1]: x2.grad": t2.grad}
    return ours, theirs


def _case_create_graph(with_torch: bool) -> tuple[Values, Values | None]:
    x, w = jnp.asarray(_X), jnp.asarray(_W)

    def first(x, w):
        return grad(lambda x, w: jnp.sum(x**3 * w), (x, w), create_graph=True)[0]

    (d2x,) = grad(lambda x: first(x, w), x, grad_outputs=jnp.ones(3))
    (dxw,) = grad(lambda w: first(x, w), w, grad_outputs=jnp.ones(3))
    ours = {"sum d2/dx2": d2x, "sum d2/dxdw": dxw}
    theirs = None
    if with_torch:
        torch = _import_torch()
        tx, tw = _f64(torch, _X, True), _f64(torch, _W, True)
        (g,) = torch.autograd.grad(torch.sum(tx**3 * tw), tx, create_graph=True)
        a, b = torch.autograd.grad(g, (tx, tw), grad_outputs=torch.ones_like(g))
        theirs = {"sum d2/dx2": a, "sum d2/dxdw": b}
    return ours, theirs


# -- a PINN loss for an ODE --------------------------------------------------------


class _Ode(NamedTuple):
    problem: AbstractProblem
    # The same right-hand side written for PyTorch, on a batch: t (N,), y (N, d).
    torch_rhs: Callable[..., Any]


def _duffing(t, y, args):
    a, w = args
    return jnp.stack([y[1], -a * y[1] - y[0] - y[0] ** 3 + jnp.cos(w * t)])


def _duffing_torch(torch, t, y, args):
    a, w = args
    return torch.stack(
        [y[:, 1], -a * y[:, 1] - y[:, 0] - y[:, 0] ** 3 + torch.cos(w * t)], dim=1
    )


def _pendulum(t, y, dy, args):
    g, b = args
    return -g * jnp.sin(y) - b * dy + 0.5 * jnp.sin(t)


def _pendulum_torch(torch, t, y, dy, args):
    g, b = args
    return -g * torch.sin(y) - b * dy + 0.5 * torch.sin(t)[:, None]


def _first_order() -> _Ode:
    problem = IVP(_duffing, t0=0.0, t1=2.0, y0=jnp.array([1.0, 0.0]), args=(0.3, 1.2))
    return _Ode(problem, _duffing_torch)


def _second_order() -> _Ode:
    problem = SecondOrderIVP(
        _pendulum, t0=0.0, t1=3.0, y0=1.0, dy0=0.5, args=(1.0, 0.2)
    )
    return _Ode(problem, _pendulum_torch)


def odefit_pinn_loss(model: PINN, problem: AbstractProblem, ts):
    """odefit's own training loss for `model`: `odefit.loss`, what `fit`
    minimises."""
    return loss(model, problem, ts)


@eqx.filter_jit
def _odefit_pinn_side(model: PINN, problem: AbstractProblem, ts):
    """odefit's numbers for one PINN: the loss, its gradient with respect to the
    trainable part by `grad`, the same by `backward` into a fresh store (frozen
    leaves left `None` through `wrt=model.trainable()`), and `(u, u', ...)`.
    Compiled once: `grad` and `backward` are ordinary traceable functions."""
    params, static = eqx.partition(model, model.trainable())

    def loss_of_params(p):
        return odefit_pinn_loss(eqx.combine(p, static), problem, ts)

    (g,) = grad(loss_of_params, (params,))
    (store,) = backward(
        lambda m: odefit_pinn_loss(m, problem, ts), (model,), wrt=(model.trainable(),)
    )
    derivs = jax.vmap(lambda t: derivatives(model, t, problem.order))(ts)
    return loss_of_params(params), g, store, derivs


def _pinn_case(
    name: str,
    ode: Callable[[], _Ode],
    *,
    hard: bool,
    scale: float | None = None,
    n_points: int = 12,
):
    def compute(with_torch: bool) -> tuple[Values, Values | None]:
        _check_x64()
        problem, torch_rhs = ode()
        ts = jnp.linspace(problem.t0, problem.t1, n_points)
        model = PINN(
            problem,
            width=8,
            depth=2,
            hard_constraints=hard,
            scale=scale,
            key=jr.key(0),
        )
        loss, g, store, derivs = _odefit_pinn_side(model, problem, ts)
        names = ["u", "du/dt", "d2u/dt2"][: problem.order + 1]
        ours: dict[str, Any] = {"loss": loss}
        for label, d in zip(names, derivs, strict=True):
            ours[f"{label} at {n_points} points"] = jnp.reshape(d, (n_points, -1))
        for k, layer in enumerate(g.network.layers):
            ours[f"dloss/d layers[{k}].weight"] = layer.weight
            ours[f"dloss/d layers[{k}].bias"] = layer.bias
        ours["backward(): every .grad"] = _concat(
            [(lay.weight, lay.bias) for lay in store.network.layers]
        )
        theirs = None
        if with_torch:
            net = torch_net(model.network)
            loss, torch_derivs = torch_pinn_loss(net, model, problem, torch_rhs, ts)
            loss.backward()
            linears = [layer for layer in net if hasattr(layer, "weight")]
            theirs = {"loss": loss}
            for label, d in zip(names, torch_derivs, strict=True):
                theirs[f"{label} at {n_points} points"] = d
            for k, layer in enumerate(linears):
                theirs[f"dloss/d layers[{k}].weight"] = layer.weight.grad
                theirs[f"dloss/d layers[{k}].bias"] = layer.bias.grad
            theirs["backward(): every .grad"] = _concat(
                [(_np(lay.weight.grad), _np(lay.bias.grad)) for lay in linears]
            )
        return ours, theirs

    return Case(name, compute)


def _concat(pairs) -> np.ndarray:
    return np.concatenate([np.ravel(_np(x)) for pair in pairs for x in pair])


# -- threads -----------------------------------------------------------------------

# The threads cross-check shares its model, batches and loss with the threaded
# training comparison (`_threads`).
_THREADS = _threads.WORKERS
_thread_setup = _threads.setup
_mlp_loss = _threads.mlp_loss
_flat_grads = _threads.flat


def _in_threads(work: Callable[[int], Any]) -> list[Any]:
    """Runs `work(k)` for k = 0..n-1 in n threads released together."""
    return _threads.in_threads(work, _THREADS)


def odefit_thread_gradients(mlp, batches) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each thread's gradient of the shared `mlp`, computed concurrently in threads
    and then serially, by `torchlike.grad` and by `torchlike.backward` into a
    thread-local store: (threaded, serial), each a list of flat vectors
    [grad() of thread 0, ..., backward() of thread 0, ...]."""

    def work(k):
        xs = jnp.asarray(batches[k])
        (g,) = grad(lambda m: _mlp_loss(m, xs), mlp)
        (b,) = backward(lambda m: _mlp_loss(m, xs), mlp)
        return _flat_grads(g), _flat_grads(b)

    threaded = _in_threads(work)
    serial = [work(k) for k in range(_THREADS)]
    flatten = lambda pairs: [p[0] for p in pairs] + [p[1] for p in pairs]
    return flatten(threaded), flatten(serial)


def _case_threads(with_torch: bool) -> tuple[Values, Values | None]:
    _check_x64()
    mlp, batches = _thread_setup()
    threaded, serial = odefit_thread_gradients(mlp, batches)
    ours: dict[str, Any] = {}
    for k in range(_THREADS):
        ours[f"thread {k}: grad()"] = threaded[k]
    ours["|threaded - serial|, all threads"] = np.max(
        [np.max(np.abs(a - b)) for a, b in zip(threaded, serial, strict=True)]
    )
    # The explicit store makes the sum of the threads' gradients something you ask
    # for: accumulate the threads' batches into one store.
    store = None
    for xs in batches:
        store = backward(
            lambda m, xs=xs: _mlp_loss(m, jnp.asarray(xs)), mlp, grads=store
        )
    ours[f".grad after {_THREADS} threads' backward()"] = _flat_grads(store[0])
    theirs = None
    if with_torch:
        theirs = _torch_threads(mlp, batches)
    return ours, theirs


def _torch_threads(mlp, batches) -> dict[str, Any]:
    torch = _import_torch()
    net = torch_net(mlp)
    params = [
        p for layer in net if hasattr(layer, "weight") for p in layer.parameters()
    ]

    def loss(k):
        xs = _f64(torch, batches[k])
        return torch.mean((net(xs) - torch.sin(3 * xs)) ** 2)

    def work(k):
        grads = torch.autograd.grad(loss(k), params)  # functional: nothing shared
        return np.concatenate([np.ravel(_np(g)) for g in grads])

    threaded = _in_threads(work)
    serial = [work(k) for k in range(_THREADS)]
    out: dict[str, Any] = {f"thread {k}: grad()": threaded[k] for k in range(_THREADS)}
    out["|threaded - serial|, all threads"] = np.max(
        [np.max(np.abs(a - b)) for a, b in zip(threaded, serial, strict=True)]
    )
    # Every thread's loss.backward() adds into the same .grad. PyTorch's autograd
    # notes call this non-deterministic: the sum comes out in whatever order the
    # threads finished (here equal to odefit's sum to rounding), and no thread can
    # read its own gradient back without racing the others.
    net.zero_grad()
    _in_threads(lambda k: loss(k).backward())
    out[f".grad after {_THREADS} threads' backward()"] = np.concatenate(
        [np.ravel(_np(p.grad)) for p in params]
    )
    return out


CASES = [
    Case("y = x1**2 + 5*x2, grad", _case_two_input_grad),
    Case("y = x1**2 + 5*x2, backward", _case_two_input_backward),
    Case("grad_outputs, non-scalar y", _case_grad_outputs),
    Case("unused input", _case_unused),
    Case("accumulation over backward calls", _case_accumulate),
    Case("backward(inputs=...) as wrt=", _case_inputs_restriction),
    Case("create_graph=True, 2nd derivs", _case_create_graph),
    _pinn_case("PINN loss, IVP (Duffing)", _first_order, hard=True),
    _pinn_case("PINN loss, SecondOrderIVP", _second_order, hard=True),
    _pinn_case(
        "PINN loss, SecondOrderIVP, soft",
        _second_order,
        hard=False,
        scale=0.8,
    ),
    Case(f"{_THREADS} threads, one shared model", _case_threads),
    Case(
        f"hand-written loop, {_training.STEPS} Adam steps, IVP",
        lambda with_torch: _training.compare(with_torch, _first_order),
    ),
    Case(
        f"hand-written loop, {_training.STEPS} Adam steps, SecondOrderIVP",
        lambda with_torch: _training.compare(with_torch, _second_order),
    ),
    Case(
        f"threaded training, {_threads.WORKERS} workers x {_threads.STEPS} SGD steps",
        lambda with_torch: _threads.compare(with_torch),
    ),
]


def run_cases(with_torch: bool | None = None) -> list[Row]:
    """Every case's rows; PyTorch's side is computed when `with_torch` (default:
    when PyTorch is installed)."""
    _check_x64()
    if with_torch is None:
        with_torch = torch_available()
    return [row for case in CASES for row in case.run(with_torch)]


def _show(value) -> str:
    if value is None:
        return "None"
    flat = np.ravel(value)
    if flat.size == 1:
        return f"{flat[0]:.10g}"
    if flat.size <= 3:
        return "[" + ", ".join(f"{v:.6g}" for v in flat) + "]"
    return f"[{flat[0]:.6g}, {flat[1]:.6g}, ...] ({flat.size})"


def format_table(rows: list[Row]) -> str:
    header = ("case", "quantity", "PyTorch", "odefit", "max |diff|")
    body = [
        (
            r.case,
            r.quantity,
            "-" if r.difference is None else _show(r.torch),
            _show(r.odefit),
            "-" if r.difference is None else f"{r.difference:.1e}",
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(5)]
    lines = []
    previous = None
    for k, line in enumerate([header, *body]):
        shown = list(line)
        if k > 0 and line[0] == previous:
            shown[0] = ""
        previous = line[0]
        lines.append(
            "  ".join(s.ljust(w) for s, w in zip(shown, widths, strict=True)).rstrip()
        )
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
