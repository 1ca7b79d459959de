"""odefit against PyTorch (eager, torch.func, torch.compile) and hand-written JAX.

The same physics-informed network in every framework: the same problem (the damped
harmonic oscillator u'' = -400u - 4u' as a second-order ODE on [0, 1], and
Lotka–Volterra on [0, 5]), the same ansatz (initial conditions exact, time scaled to
[-1, 1], state non-dimensionalised by odefit's characteristic scale), the same MLP
(1→64→64→64→out, tanh) with the same initial weights copied across, the same
collocation points, the same loss (mean squared residual) and the same Adam
(learning rate 1e-2 decaying exponentially to 1e-4 over the run).

- **pytorch-eager**: the usual PINN code, `torch.autograd.grad(..., create_graph=True)`
  once per derivative order (and per output component), then `loss.backward()`.
- **pytorch-func**: `torch.func` — `jvp` for the time derivatives, `vmap` over points,
  `grad` for the parameters.
- **pytorch-compile**: `torch.compile` of the eager loss (double backward), or if that
  fails, of the `torch.func` gradient, or if that fails too, of a loss whose time
  derivatives are propagated through the network by hand (value, first and second
  derivative of every layer, stacked into one matrix product per layer: the Taylor
  mode odefit uses, written out in PyTorch), which needs only a first-order
  backward; failures are reported, not hidden.
- **jax-hand**: a minimal JAX loop a user would write: nested `jax.jvp`, `jax.grad`,
  optax Adam, the steps inside one jitted `lax.scan`.
- **odefit**: `odefit.fit` (Taylor-mode derivatives, compiled chunked loop).

Before any timing, the loss and gradient at the initial weights are compared across
frameworks. Then:

1. steady-state training steps/s on a fixed grid (median and min–max over interleaved
   repeats, warm-up excluded), with the compile / first-step time, and the achieved
   FLOP rate (the XLA-counted FLOPs of one step times steps/s) against this machine's
   measured float32 matmul peak;
2. how the cost grows with the number of collocation points and the width;
3. time to reach relative L2 errors 1e-2 and 1e-3 (wall time from the start,
   compilation included; the error evaluation is not timed) and the error after a
   fixed wall budget, all frameworks training on the same per-step random points
   (odefit's `Uniform(256, warmup=steps // 2)` draws, replayed for the others).

    python benchmarks/vs_pytorch.py            # the full run (about 15 minutes)
    python benchmarks/vs_pytorch.py --quick    # a few minutes
    python benchmarks/vs_pytorch.py --readme   # also rewrite the Speed section of
                                               # benchmarks/README.md

Runs on whatever JAX and PyTorch find: a GPU is used when there is one.
"""

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

import odefit

try:
    import torch
except ImportError:  # pragma: no cover - the benchmark needs the `torch` extra
    sys.exit("This benchmark needs PyTorch: pip install 'odefit[torch]'.")

HERE = Path(__file__).resolve().parent
FRAMEWORKS = ("pytorch-eager", "pytorch-func", "pytorch-compile", "jax-hand", "odefit")


# --------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Spec:
    """One benchmark problem, written once for every framework: the right-hand side
    acts on tuples of state components and uses arithmetic only."""

    name: str
    order: int
    t0: float
    t1: float
    y0: tuple[float, ...]
    dy0: tuple[float, ...] | None
    rhs: Callable  # order 1: rhs(y) -> dy; order 2: rhs(y, dy) -> ddy (tuples)
    exact: Callable | None = None  # closed-form solution, NumPy, (times, comps)

    @property
    def size(self) -> int:
        return len(self.y0)


def _oscillator_rhs(y, dy):
    return (-400.0 * y[0] - 4.0 * dy[0],)


def _oscillator_exact(ts):
    a, w = 2.0, math.sqrt(400.0 - 4.0)
    u = np.exp(-a * ts) * (np.cos(w * ts) + a / w * np.sin(w * ts))
    return u[:, None]


def _lotka_volterra_rhs(y):
    x, z = y
    return (1.5 * x - 1.0 * x * z, -3.0 * z + 1.0 * x * z)


OSCILLATOR = Spec(
    "oscillator", 2, 0.0, 1.0, (1.0,), (0.0,), _oscillator_rhs, _oscillator_exact
)
LOTKA_VOLTERRA = Spec(
    "lotka-volterra", 1, 0.0, 5.0, (1.0, 1.0), None, _lotka_volterra_rhs
)
SPECS = {s.name: s for s in (OSCILLATOR, LOTKA_VOLTERRA)}


def odefit_problem(spec: Spec):
    if spec.order == 2:
        return odefit.SecondOrderIVP(
            lambda t, y, dy, args: spec.rhs((y,), (dy,))[0],
            spec.t0,
            spec.t1,
            spec.y0[0],
            spec.dy0[0],
        )
    return odefit.IVP(
        lambda t, y, args: jnp.stack(spec.rhs(tuple(y))),
        spec.t0,
        spec.t1,
        jnp.asarray(spec.y0),
    )


@dataclass
class Setup:
    """Everything the frameworks share for one (problem, width) pair."""

    spec: Spec
    problem: object
    model: odefit.PINN
    layers: list[tuple[np.ndarray, np.ndarray]]  # (W (out, in), b) per layer
    scale: np.ndarray  # per component
    ts_eval: np.ndarray
    reference: np.ndarray  # (times, comps)


def make_setup(spec: Spec, width: int, seed: int = 0) -> Setup:
    problem = odefit_problem(spec)
    model = odefit.PINN(problem, width=width, depth=3, key=jr.key(seed))
    layers = [
        (np.asarray(layer.weight), np.asarray(layer.bias)) for layer in model.mlp.layers
    ]
    ts = np.linspace(spec.t0, spec.t1, 1001, dtype=np.float32)
    if spec.exact is not None:
        reference = spec.exact(ts.astype(np.float64))
    else:
        reference = np.asarray(problem.solve(jnp.asarray(ts))).reshape(len(ts), -1)
    return Setup(
        spec,
        problem,
        model,
        layers,
        np.asarray(model.scale, np.float32).reshape(-1),
        ts,
        reference.astype(np.float64),
    )


def relative_l2(pred: np.ndarray, reference: np.ndarray) -> float:
    pred = np.asarray(pred, np.float64).reshape(reference.shape)
    return float(np.linalg.norm(pred - reference) / np.linalg.norm(reference))


def schedule_for(steps: int):
    return optax.exponential_decay(1e-2, transition_steps=steps, decay_rate=1e-2)


# ------------------------------------------------------- the same points everywhere


def uniform_points(key, start: int, count: int, n: int, warmup: int, t0, t1):
    """The points odefit's `Uniform(n, warmup=warmup)` draws at steps
    `start, ..., start + count - 1` of a fit with key `key`."""
    collocation = odefit.Uniform(n, warmup=warmup)

    def one(step):
        state = step.astype(jnp.float32)
        ts, _ = collocation.sample(state, t0, t1, None, key=jr.fold_in(key, step))
        return ts

    return jax.vmap(one)(start + jnp.arange(count))


_uniform_points = jax.jit(uniform_points, static_argnums=(2, 3, 4, 5, 6))


# ------------------------------------------------------------------- hand-written JAX


def jax_solution(spec: Spec, scale, layers, t):
    """The ansatz at one time `t`, from a plain list of (W, b)."""
    s = (t - spec.t0) / (spec.t1 - spec.t0)
    x = jnp.stack([2 * s - 1])
    for w, b in layers[:-1]:
        x = jnp.tanh(w @ x + b)
    w, b = layers[-1]
    n = (w @ x + b) * scale
    y0 = jnp.asarray(spec.y0, jnp.float32)
    if spec.order == 1:
        return y0 + s * n
    dy0 = jnp.asarray(spec.dy0, jnp.float32)
    return y0 + dy0 * (t - spec.t0) + s**2 * n


def jax_loss(spec: Spec, scale, layers, ts):
    f = partial(jax_solution, spec, scale, layers)
    one = jnp.ones((), ts.dtype)
    span = spec.t1 - spec.t0

    def residual(t):
        if spec.order == 1:
            y, dy = jax.jvp(f, (t,), (one,))
            return (dy - jnp.stack(spec.rhs(tuple(y)))) / (scale / span)
        (y, dy), (_, ddy) = jax.jvp(lambda s: jax.jvp(f, (s,), (one,)), (t,), (one,))
        return (ddy - jnp.stack(spec.rhs(tuple(y), tuple(dy)))) / (scale / span**2)

    return jnp.mean(jax.vmap(residual)(ts) ** 2)


class JaxHand:
    """The loop a JAX user writes by hand: jitted `lax.scan` of grad + Adam."""

    name = "jax-hand"

    def __init__(self, setup: Setup, steps_total: int):
        self.setup = setup
        self.spec = setup.spec
        self.scale = jnp.asarray(setup.scale)
        self.optimizer = optax.adam(schedule_for(steps_total))
        self.reset()
        spec, scale, optimizer = self.spec, self.scale, self.optimizer

        def step(carry, ts):
            layers, opt_state = carry
            loss, grads = jax.value_and_grad(partial(jax_loss, spec, scale))(layers, ts)
            updates, opt_state = optimizer.update(grads, opt_state, layers)
            return (optax.apply_updates(layers, updates), opt_state), loss

        self._step = step

        @partial(jax.jit, static_argnums=(2,))
        def run_grid(layers, opt_state, length, ts):
            return jax.lax.scan(
                lambda c, _: step(c, ts), (layers, opt_state), None, length=length
            )

        @partial(jax.jit, static_argnums=(2, 4, 5))
        def run_uniform(layers, opt_state, length, start, n, warmup, key):
            def body(c, i):
                ts = uniform_points(key, start + i, 1, n, warmup, spec.t0, spec.t1)[0]
                return step(c, ts)

            return jax.lax.scan(body, (layers, opt_state), jnp.arange(length))

        self._run_grid, self._run_uniform = run_grid, run_uniform

    def reset(self):
        self.layers = [(jnp.asarray(w), jnp.asarray(b)) for w, b in self.setup.layers]
        self.opt_state = self.optimizer.init(self.layers)
        self.done = 0

    def loss_and_grads(self, ts):
        loss, grads = jax.value_and_grad(partial(jax_loss, self.spec, self.scale))(
            self.layers, jnp.asarray(ts)
        )
        return float(loss), [(np.asarray(w), np.asarray(b)) for w, b in grads]

    def train_grid(self, ts, steps: int, chunk: int):
        ts = jnp.asarray(ts)
        for _ in range(steps // chunk):
            (self.layers, self.opt_state), losses = self._run_grid(
                self.layers, self.opt_state, chunk, ts
            )
        jax.block_until_ready(self.layers)
        self.done += steps

    def train_uniform(self, steps: int, n: int, warmup: int, key):
        (self.layers, self.opt_state), _ = self._run_uniform(
            self.layers, self.opt_state, steps, jnp.asarray(self.done), n, warmup, key
        )
        jax.block_until_ready(self.layers)
        self.done += steps

    def predict(self, ts):
        f = partial(jax_solution, self.spec, self.scale, self.layers)
        return np.asarray(jax.vmap(f)(jnp.asarray(ts)))

    def step_flops(self, ts) -> float:
        """XLA's FLOP count of one training step (gradient and Adam update)."""
        compiled = (
            jax.jit(lambda c, t: self._step(c, t))
            .lower((self.layers, self.opt_state), jnp.asarray(ts))
            .compile()
        )
        analysis = compiled.cost_analysis()
        if isinstance(analysis, list):
            analysis = analysis[0]
        return float(analysis.get("flops", math.nan))


# ------------------------------------------------------------------------------ odefit


class Odefit:
    """`odefit.fit`, continued segment by segment through its checkpoints (the
    public way to watch a fit's model along the way; bit-identical to one call)."""

    name = "odefit"

    def __init__(self, setup: Setup, steps_total: int):
        self.setup = setup
        self.steps_total = steps_total
        self.optimizer = optax.adam(schedule_for(steps_total))
        self._dir = tempfile.TemporaryDirectory()
        self.reset()

    def reset(self):
        self.model = self.setup.model
        self.done = 0
        self.path = os.path.join(self._dir.name, f"fit-{time.monotonic_ns()}.eqx")
        self.last = None

    def _loss_terms(self, model, ts):
        return odefit.loss(model, self.setup.problem, ts)

    def loss_and_grads(self, ts):
        params, static = eqx.partition(self.model, self.model.trainable())
        loss, grads = jax.value_and_grad(
            lambda p: self._loss_terms(eqx.combine(p, static), jnp.asarray(ts))
        )(params)
        return float(loss), [
            (np.asarray(layer.weight), np.asarray(layer.bias))
            for layer in grads.mlp.layers
        ]

    def train_grid(self, ts, steps: int, chunk: int):
        result = odefit.fit(
            self.setup.problem,
            self.model,
            steps=steps,
            optimizer=self.optimizer,
            collocation=odefit.Grid(len(ts)),
            chunk_size=chunk,
            key=jr.key(1),
            progress=False,
        )
        jax.block_until_ready(result.model)
        self.last = result
        self.done += steps

    def train_uniform(self, steps: int, n: int, warmup: int, key):
        result = odefit.fit(
            self.setup.problem,
            self.setup.model,
            steps=self.done + steps,
            optimizer=self.optimizer,
            collocation=odefit.Uniform(n, warmup=warmup),
            chunk_size=steps,
            key=key,
            progress=False,
            checkpoint_path=self.path,
            checkpoint_every=steps,
        )
        jax.block_until_ready(result.model)
        assert result.steps == self.done + steps, result.stop_reason
        self.model = result.model
        self.last = result
        self.done += steps

    def predict(self, ts):
        return np.asarray(jax.vmap(self.model)(jnp.asarray(ts)))

    def step_flops(self, ts) -> float:
        from odefit._objective import make_objective, split
        from odefit._trainers import OptaxTrainer

        # All points at once (`part=None`): XLA's cost analysis counts a loop's
        # body once, so the FLOPs of a step computed in parts would be undercounted;
        # the arithmetic is the same.
        trainer = OptaxTrainer(self.optimizer, part=None)
        params, static = split(self.model, None)
        residuals = make_objective(self.setup.problem, static).residuals(
            jnp.asarray(ts)
        )
        state = (params, trainer.init(residuals, params))

        def one(state):
            return trainer.step(residuals, *state)

        analysis = jax.jit(one).lower(state).compile().cost_analysis()
        if isinstance(analysis, list):
            analysis = analysis[0]
        return float(analysis.get("flops", math.nan))


# odefit's accuracy recipe in the time-to-accuracy runs: Adam on the same shared
# points for a short warm-up, then Levenberg–Marquardt on `n` fixed points, timed in
# segments of `LM_SEGMENT` steps.
LM_WARMUP, LM_STEPS, LM_SEGMENT = 2000, 600, 25


class OdefitLM(Odefit):
    """`odefit.fit` with Adam for `LM_WARMUP` steps, then with
    `odefit.LevenbergMarquardt` (both continued through checkpoints)."""

    name = "odefit-lm"

    @staticmethod
    def segments(steps: int, segment: int) -> list[int]:
        """The warm-up in pieces of `segment`, then LM in pieces of `LM_SEGMENT`
        (whatever `steps` the other frameworks run)."""
        return segments(LM_WARMUP, segment) + segments(LM_STEPS, LM_SEGMENT)

    def __init__(self, setup: Setup, steps_total: int):
        super().__init__(setup, LM_WARMUP)

    def reset(self):
        super().reset()
        self.lm_path = self.path.replace(".eqx", "-lm.eqx")
        self.warm = None

    def train_uniform(self, steps: int, n: int, warmup: int, key):
        if self.done < LM_WARMUP:
            if self.done + steps > LM_WARMUP:
                raise ValueError("a segment crosses the end of the warm-up")
            super().train_uniform(steps, n, LM_WARMUP // 2, key)
            self.warm = self.model
            return
        result = odefit.fit(
            self.setup.problem,
            self.warm,
            steps=self.done - LM_WARMUP + steps,
            optimizer=odefit.LevenbergMarquardt(points=n),
            key=key,
            progress=False,
            checkpoint_path=self.lm_path,
            checkpoint_every=steps,
        )
        jax.block_until_ready(result.model)
        self.model = result.model
        self.last = result
        self.done += steps


# ----------------------------------------------------------------------------- PyTorch


def torch_device():
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def torch_sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class TorchBase:
    """The network and Adam shared by the three PyTorch variants."""

    name = "pytorch"

    def __init__(self, setup: Setup, steps_total: int):
        self.setup = setup
        self.spec = setup.spec
        self.steps_total = steps_total
        self.device = torch_device()
        self.scale = torch.as_tensor(setup.scale, device=self.device)
        self.y0 = torch.as_tensor(self.spec.y0, dtype=torch.float32, device=self.device)
        self.dy0 = (
            None
            if self.spec.dy0 is None
            else torch.as_tensor(self.spec.dy0, dtype=torch.float32, device=self.device)
        )
        layers = []
        for i, (w, _) in enumerate(setup.layers):
            layers.append(torch.nn.Linear(w.shape[1], w.shape[0]))
            if i < len(setup.layers) - 1:
                layers.append(torch.nn.Tanh())
        # Built once: `reset` reloads the initial weights into the same parameters,
        # so that compiled code is reused across repeats.
        self.net = torch.nn.Sequential(*layers).to(self.device)
        self.linears = [m for m in self.net if isinstance(m, torch.nn.Linear)]
        self.forward = self.net
        self.reset()

    def reset(self):
        with torch.no_grad():
            for linear, (w, b) in zip(self.linears, self.setup.layers, strict=True):
                linear.weight.copy_(torch.from_numpy(w))
                linear.bias.copy_(torch.from_numpy(b))
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=1e-2)
        gamma = 1e-2 ** (1.0 / self.steps_total)
        self.lr_schedule = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, gamma)
        self.done = 0

    def ansatz(self, t, n):
        """y from the network output `n` (already times the scale), any shape."""
        span = self.spec.t1 - self.spec.t0
        s = (t - self.spec.t0) / span
        if self.spec.order == 1:
            return self.y0 + s * n
        return self.y0 + self.dy0 * (t - self.spec.t0) + s**2 * n

    def units(self):
        span = self.spec.t1 - self.spec.t0
        return self.scale / span**self.spec.order

    def rhs(self, y, dy=None):
        comps = tuple(y[..., i] for i in range(self.spec.size))
        if self.spec.order == 1:
            return torch.stack(self.spec.rhs(comps), dim=-1)
        dcomps = tuple(dy[..., i] for i in range(self.spec.size))
        return torch.stack(self.spec.rhs(comps, dcomps), dim=-1)

    def loss(self, ts):  # pragma: no cover - defined by subclasses
        raise NotImplementedError

    def optimizer_step(self, ts):
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(ts)
        loss.backward()
        self.optimizer.step()
        self.lr_schedule.step()
        return loss

    def loss_and_grads(self, ts):
        ts = torch.as_tensor(ts, device=self.device)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(ts)
        loss.backward()
        params = list(self.net.parameters())
        grads = [
            (
                params[i].grad.detach().cpu().numpy(),
                params[i + 1].grad.detach().cpu().numpy(),
            )
            for i in range(0, len(params), 2)
        ]
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss), grads

    def train_grid(self, ts, steps: int, chunk: int):
        ts = torch.as_tensor(ts, device=self.device)
        for _ in range(steps):
            self.optimizer_step(ts)
        torch_sync()
        self.done += steps

    def train_points(self, points: np.ndarray):
        """One step per row of `points` (the replayed random draws)."""
        points = torch.as_tensor(points, device=self.device)
        for row in points:
            self.optimizer_step(row)
        torch_sync()
        self.done += len(points)

    def predict(self, ts):
        with torch.no_grad():
            t = torch.as_tensor(ts, device=self.device)[:, None]
            span = self.spec.t1 - self.spec.t0
            n = self.net(2 * (t - self.spec.t0) / span - 1) * self.scale
            return self.ansatz(t, n).cpu().numpy()

    def step_flops(self, ts) -> float:
        return math.nan


class TorchEager(TorchBase):
    """The usual PyTorch PINN: `autograd.grad(..., create_graph=True)` per
    derivative order and output component, then `loss.backward()`."""

    name = "pytorch-eager"

    def loss(self, ts):
        t = ts[:, None].clone().requires_grad_(True)
        span = self.spec.t1 - self.spec.t0
        n = self.forward(2 * (t - self.spec.t0) / span - 1) * self.scale
        y = self.ansatz(t, n)
        ones = torch.ones_like(t)

        def d(u):
            return torch.cat(
                [
                    torch.autograd.grad(
                        u[:, i : i + 1], t, grad_outputs=ones, create_graph=True
                    )[0]
                    for i in range(u.shape[1])
                ],
                dim=1,
            )

        dy = d(y)
        if self.spec.order == 1:
            r = dy - self.rhs(y)
        else:
            r = d(dy) - self.rhs(y, dy)
        return torch.mean((r / self.units()) ** 2)


class TorchFunc(TorchBase):
    """`torch.func`: forward-mode `jvp` in time, `vmap` over points, `grad` over
    the parameters (gradients written into `.grad` for the same torch Adam)."""

    name = "pytorch-func"

    def __init__(self, setup: Setup, steps_total: int):
        super().__init__(setup, steps_total)
        self.grad_fn = torch.func.grad_and_value(self.functional_loss)

    def functional_loss(self, params, ts):
        from torch.func import functional_call, jvp, vmap

        span = self.spec.t1 - self.spec.t0

        # Time is kept as a 1-element tensor, not a 0-d one: in this PyTorch,
        # forward-mode AD of a 0-d tensor times a Python float yields a float64
        # tangent, which the float32 network then rejects.
        def solution(t):
            x = 2 * (t - self.spec.t0) / span - 1
            n = functional_call(self.net, params, (x,)) * self.scale
            return self.ansatz(t, n)

        one = torch.ones((1,), device=self.device)

        def residual(t):
            t = t.reshape(1)
            if self.spec.order == 1:
                y, dy = jvp(solution, (t,), (one,))
                return (dy - self.rhs(y)) / self.units()

            def first(s):
                return jvp(solution, (s,), (one,))

            (y, dy), (_, ddy) = jvp(first, (t,), (one,))
            return (ddy - self.rhs(y, dy)) / self.units()

        return torch.mean(vmap(residual)(ts) ** 2)

    def optimizer_step(self, ts):
        params = {k: v.detach() for k, v in self.net.named_parameters()}
        grads, loss = self.grad_fn(params, ts)
        for name, p in self.net.named_parameters():
            p.grad = grads[name]
        self.optimizer.step()
        self.lr_schedule.step()
        return loss

    def loss(self, ts):
        params = dict(self.net.named_parameters())
        return self.functional_loss(params, ts)


class TorchCompile(TorchBase):
    """`torch.compile`: first of the eager loss (its double backward); if PyTorch
    cannot, of the `torch.func` gradient. `self.variant` says which ran and
    `self.failures` why the others did not."""

    name = "pytorch-compile"

    def __init__(self, setup: Setup, steps_total: int):
        self.variant = None
        self.failures: list[str] = []
        super().__init__(setup, steps_total)
        self.names = [name for name, _ in self.net.named_parameters()]

    def set_variant(self, variant: str | None):
        self.variant = variant
        self.forward = self.net
        if variant == "compiled network":
            self.forward = torch.compile(self.net)
        elif variant == "eager loss":
            self.compiled_loss = torch.compile(lambda ts: TorchEager.loss(self, ts))
        elif variant == "torch.func gradient":
            self.compiled_grad = torch.compile(
                torch.func.grad_and_value(
                    lambda params, ts: TorchFunc.functional_loss(self, params, ts)
                )
            )
        elif variant == "hand-propagated derivatives":
            self.compiled_loss = torch.compile(self.propagated_loss)

    def propagated_loss(self, ts):
        """The residual with the time derivatives of every layer written out:
        rows [value; d/dt; d²/dt²] go through each weight matrix as one product,
        tanh's chain rule gives the next layer's rows. Only the parameter gradient
        needs autograd, a first-order backward that `torch.compile` supports."""
        n_points, order = ts.shape[0], self.spec.order
        span = self.spec.t1 - self.spec.t0
        t = ts[:, None]
        x = 2 * (t - self.spec.t0) / span - 1
        rows = [x, torch.full_like(x, 2 / span)]
        if order == 2:
            rows.append(torch.zeros_like(x))
        for i, linear in enumerate(self.linears):
            a = (torch.cat(rows) @ linear.weight.T).split(n_points)
            a = [a[0] + linear.bias, *a[1:]]
            if i == len(self.linears) - 1:
                rows = a
                break
            z = torch.tanh(a[0])
            slope = 1 - z**2
            rows = [z, slope * a[1]]
            if order == 2:
                rows.append(slope * a[2] - 2 * z * slope * a[1] ** 2)
        n = [r * self.scale for r in rows]
        s = (t - self.spec.t0) / span
        if order == 1:
            y = self.y0 + s * n[0]
            dy = n[0] / span + s * n[1]
            r = dy - self.rhs(y)
        else:
            y = self.y0 + self.dy0 * (t - self.spec.t0) + s**2 * n[0]
            dy = self.dy0 + 2 * s * n[0] / span + s**2 * n[1]
            ddy = 2 * n[0] / span**2 + 4 * s * n[1] / span + s**2 * n[2]
            r = ddy - self.rhs(y, dy)
        return torch.mean((r / self.units()) ** 2)

    def loss(self, ts):
        if self.variant in ("eager loss", "hand-propagated derivatives"):
            return self.compiled_loss(ts)
        if self.variant == "compiled network":
            return TorchEager.loss(self, ts)
        params = dict(self.net.named_parameters())
        return TorchFunc.functional_loss(self, params, ts)

    def loss_and_grads(self, ts):
        if self.variant != "torch.func gradient":
            return TorchBase.loss_and_grads(self, ts)
        params = {k: v.detach() for k, v in self.net.named_parameters()}
        grads, loss = self.compiled_grad(
            params, torch.as_tensor(ts, device=self.device)
        )
        return float(loss), [
            (
                grads[self.names[i]].detach().cpu().numpy(),
                grads[self.names[i + 1]].detach().cpu().numpy(),
            )
            for i in range(0, len(self.names), 2)
        ]

    def optimizer_step(self, ts):
        if self.variant != "torch.func gradient":
            return TorchBase.optimizer_step(self, ts)
        params = {k: v.detach() for k, v in self.net.named_parameters()}
        grads, loss = self.compiled_grad(params, ts)
        for name, p in self.net.named_parameters():
            p.grad = grads[name]
        self.optimizer.step()
        self.lr_schedule.step()
        return loss


# ----------------------------------------------------------------------------- helpers


def max_relative_error(grads, reference) -> float:
    """The largest per-array relative difference (max abs difference over max abs
    reference) between two lists of (W, b) gradients."""
    worst = 0.0
    for (w, b), (rw, rb) in zip(grads, reference, strict=True):
        for x, r in ((w, rw), (b, rb)):
            x, r = np.asarray(x, np.float64), np.asarray(r, np.float64)
            worst = max(worst, float(np.abs(x - r).max() / max(np.abs(r).max(), 1e-30)))
    return worst


RUNNERS = {
    "pytorch-eager": TorchEager,
    "pytorch-func": TorchFunc,
    "pytorch-compile": TorchCompile,
    "jax-hand": JaxHand,
    "odefit": Odefit,
    "odefit-lm": OdefitLM,
}


def make(name: str, setup: Setup, steps_total: int):
    return RUNNERS[name](setup, steps_total)


def segments(steps: int, segment: int) -> list[int]:
    """A time-to-accuracy run of `steps` steps, timed in pieces of `segment`."""
    return [min(segment, steps - done) for done in range(0, steps, segment)]


def log(*args):
    print(*args, flush=True, file=sys.stderr)


def matmul_peak(n: int = 2048, repeats: int = 5) -> dict:
    """The float32 matmul rate of this machine, measured with JAX and PyTorch."""
    a = jr.normal(jr.key(0), (n, n), jnp.float32)
    mm = jax.jit(lambda a: a @ a)
    jax.block_until_ready(mm(a))
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        jax.block_until_ready(mm(a))
        times.append(time.perf_counter() - tic)
    ta = torch.randn(n, n, device=torch_device())
    ta @ ta
    torch_sync()
    ttimes = []
    for _ in range(repeats):
        tic = time.perf_counter()
        ta @ ta
        torch_sync()
        ttimes.append(time.perf_counter() - tic)
    flops = 2 * n**3
    return {
        "jax_gflops": flops / min(times) / 1e9,
        "torch_gflops": flops / min(ttimes) / 1e9,
        "peak_gflops": flops / min(min(times), min(ttimes)) / 1e9,
        "size": n,
    }


# ---------------------------------------------------------------- worker processes
#
# Every framework runs in its own process. In one process the frameworks slow each
# other down: after a computation, XLA's and OpenMP's worker threads spin for a
# while before they sleep, and on a machine with few cores that spinning steals
# the cores from the next framework (on this 2-core machine PyTorch ran 10x slower
# right after JAX). A worker waits on a pipe while the others run.


def _serve(conn) -> None:
    runners: dict = {}
    while True:
        message = conn.recv()
        if message is None:
            return
        method, args, kwargs = message
        try:
            value = globals()["w_" + method](runners, *args, **kwargs)
            conn.send((True, value))
        except Exception:  # noqa: BLE001 - sent back to the parent
            conn.send((False, traceback.format_exc()[-3000:]))


class WorkerError(RuntimeError):
    pass


class Worker:
    """A framework's process; `call(method, ...)` runs `w_<method>` there."""

    def __init__(self, name: str):
        self.name = name
        self._start()

    def _start(self):
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child,), daemon=True)
        self.process.start()

    def call(self, method: str, *args, **kwargs):
        if not self.process.is_alive():
            raise WorkerError(f"the {self.name} process is not running")
        self.conn.send((method, args, kwargs))
        try:
            ok, value = self.conn.recv()
        except EOFError:
            self.process.join(5)
            code = self.process.exitcode
            self._start()
            raise WorkerError(
                f"the {self.name} process died (exit code {code}"
                + (", a segmentation fault" if code == -11 else "")
                + f") during {method}"
            ) from None
        if not ok:
            raise WorkerError(value)
        return value

    def close(self):
        with contextlib.suppress(Exception):
            self.conn.send(None)
        self.process.join(10)


def _runner(runners, key):
    return runners[tuple(key)]


def w_setup(runners, key, framework, spec_name, width, steps_total, variant=None):
    setup = make_setup(SPECS[spec_name], width)
    runner = make(framework, setup, steps_total)
    if framework == "pytorch-compile":
        runner.set_variant(variant)
    runners[tuple(key)] = runner
    return None


def w_drop(runners, key):
    runners.pop(tuple(key), None)


def w_loss_and_grads(runners, key, ts):
    return _runner(runners, key).loss_and_grads(ts)


def w_reset(runners, key):
    _runner(runners, key).reset()


def w_train_grid(runners, key, ts, steps, chunk):
    """Trains `steps` steps on the fixed points `ts`; returns the seconds taken
    (and odefit's own compile-time estimate)."""
    runner = _runner(runners, key)
    tic = time.perf_counter()
    runner.train_grid(ts, steps, chunk)
    elapsed = time.perf_counter() - tic
    last = getattr(runner, "last", None)
    return elapsed, (None if last is None else last.compile_time)


def w_train_random(runners, key, points, n, warmup, seed):
    """Trains one segment on the shared random points: PyTorch replays them
    (`points`, one row per step), the JAX loops draw the same ones in-graph."""
    runner = _runner(runners, key)
    tic = time.perf_counter()
    if isinstance(runner, TorchBase):
        runner.train_points(points)
    else:
        runner.train_uniform(len(points), n, warmup, jr.key(seed))
    return time.perf_counter() - tic


def w_predict(runners, key, ts):
    return _runner(runners, key).predict(ts)


def w_step_flops(runners, key, ts):
    return _runner(runners, key).step_flops(ts)


def w_matmul_peak(runners):
    return matmul_peak()


def w_threads(runners):
    return {"torch_threads": torch.get_num_threads()}


def w_set_threads(runners, n: int):
    torch.set_num_threads(n)


def calibrate_torch_threads(workers) -> dict:
    """PyTorch's best thread count here: on a machine shared with other jobs,
    OpenMP's barriers make 2 threads far slower than 1 (a descheduled thread
    stalls every parallel operation), so both are tried on the eager PINN and the
    faster is used for every PyTorch variant."""
    worker = workers.get("pytorch-eager")
    if worker is None:
        return {}
    ts = np.linspace(0.0, 1.0, 1024, dtype=np.float32)
    key = ("threads",)
    worker.call("setup", key, "pytorch-eager", "oscillator", 64, 1000)
    default = worker.call("threads")["torch_threads"]
    rates = {}
    for n in sorted({1, default}):
        worker.call("set_threads", n)
        worker.call("train_grid", key, ts, 5, 5)
        rates[n] = max(
            20 / worker.call("train_grid", key, ts, 20, 20)[0] for _ in range(3)
        )
    worker.call("drop", key)
    best = max(rates, key=rates.get)
    for name, w in workers.items():
        if name.startswith("pytorch"):
            w.call("set_threads", best)
    return {"torch_threads": best, "torch_threads_steps_per_s": rates}


# ------------------------------------------------------------------ 0. gradient check

COMPILE_VARIANTS = (
    "eager loss",
    "compiled network",
    "torch.func gradient",
    "hand-propagated derivatives",
)


def probe_compile(worker: Worker, spec: Spec, variant: str, ts, reference) -> dict:
    """Tries one `torch.compile` variant in the pytorch-compile process (a crash
    of the compiled code only restarts that process): a gradient that must match
    odefit's, then 20 training steps."""
    key = ("probe", spec.name, variant)
    tic = time.perf_counter()
    try:
        worker.call("setup", key, "pytorch-compile", spec.name, 64, 1000, variant)
        _, grads = worker.call("loss_and_grads", key, ts)
        error = max_relative_error(grads, reference)
        if not error < 1e-3:
            raise WorkerError(f"the gradient differs from odefit's by {error:.2e}")
        worker.call("train_grid", key, ts, 20, 20)
        out = {"ok": True, "grad_error": error}
    except WorkerError as e:
        lines = [x for x in str(e).splitlines() if x.strip()]
        out = {"ok": False, "error": lines[-1][:400] if lines else str(e)}
    with contextlib.suppress(WorkerError):
        worker.call("drop", key)
    out["probe_s"] = time.perf_counter() - tic
    return out


def gradient_check(workers, spec: Spec, points: int, variant) -> dict:
    ts = np.linspace(spec.t0, spec.t1, points, dtype=np.float32)
    key = ("check", spec.name)
    grads = {}
    for name, worker in workers.items():
        if name == "pytorch-compile" and variant is None:
            continue
        worker.call("setup", key, name, spec.name, 64, 1000, variant)
        grads[name] = worker.call("loss_and_grads", key, ts)
        worker.call("drop", key)
    reference_loss, reference = grads.pop("odefit")
    out = {"reference": "odefit", "loss": reference_loss, "frameworks": {}}
    for name, (loss, g) in grads.items():
        error = max_relative_error(g, reference)
        out["frameworks"][name] = {
            "loss": loss,
            "loss_relative_error": abs(loss - reference_loss) / reference_loss,
            "grad_max_relative_error": error,
        }
        if name == "pytorch-compile":
            out["frameworks"][name]["variant"] = variant
        if not (error < 1e-3 and abs(loss - reference_loss) < 1e-4 * reference_loss):
            raise SystemExit(
                f"{name} and odefit disagree on {spec.name}: loss {loss} vs "
                f"{reference_loss}, gradient relative error {error:.2e}. Not timing."
            )
    return out


# ----------------------------------------------------------------- 1. steady state


def steady_state(workers, spec, width, points, repeats, target_s, variant):
    """Steps/s on a fixed grid: each framework warmed up (compiled), then timed
    in interleaved repeats of about `target_s` seconds each."""
    ts = np.linspace(spec.t0, spec.t1, points, dtype=np.float32)
    key = ("steady", spec.name, width, points)
    plan, first, compile_time, failures = {}, {}, {}, {}
    for name, worker in workers.items():
        if name == "pytorch-compile" and variant is None:
            continue
        try:
            worker.call("setup", key, name, spec.name, width, 10_000, variant)
            # The first 20 steps (compilation included), then 20 more to
            # estimate the step time and pick a chunk length.
            probe = 20 if points <= 1024 else 10
            first[name], compile_time[name] = worker.call(
                "train_grid", key, ts, probe, probe // 2
            )
            per_step = worker.call("train_grid", key, ts, probe, probe // 2)[0]
            per_step /= probe
            chunk = int(min(max(target_s / max(per_step, 1e-5) / 4, 5), 500))
            worker.call("reset", key)
            worker.call("train_grid", key, ts, 4 * chunk, chunk)  # compiles `chunk`
            plan[name] = (4 * chunk, chunk)
        except WorkerError as e:
            failures[name] = str(e).splitlines()[-1][:300]
    times = {name: [] for name in plan}
    for _ in range(repeats):
        for name, (count, chunk) in plan.items():
            try:
                workers[name].call("reset", key)
                times[name].append(
                    workers[name].call("train_grid", key, ts, count, chunk)[0]
                )
            except WorkerError as e:
                failures[name] = str(e).splitlines()[-1][:300]
    out = {}
    for name, t in times.items():
        if not t:
            continue
        rates = plan[name][0] / np.asarray(t)
        out[name] = {
            "steps_per_s": float(np.median(rates)),
            "min": float(rates.min()),
            "max": float(rates.max()),
            "steps_per_repeat": plan[name][0],
            "first_steps_s": first[name],
        }
        if name == "odefit":
            out[name]["compile_time_s"] = compile_time[name]
    for name in workers:
        with contextlib.suppress(WorkerError):
            workers[name].call("drop", key)
    return out, failures


# ---------------------------------------------------------------- 3. time to accuracy


def time_to_accuracy(
    worker, spec, name, *, steps, n, segment, cap_s, min_s, variant, thresholds, points
):
    """Trains on the shared random points in segments, timing only the training
    (in the worker); returns the (seconds, steps, error) trajectory."""
    setup_key = ("accuracy", spec.name, name)
    worker.call("setup", setup_key, name, spec.name, 64, steps, variant)
    ts_eval, reference = reference_for(spec)
    trajectory, elapsed, done = [], 0.0, 0
    lengths = getattr(RUNNERS[name], "segments", segments)(steps, segment)
    try:
        for length in lengths:
            elapsed += worker.call(
                "train_random",
                setup_key,
                points[done : done + length],
                n,
                steps // 2,
                1,
            )
            done += length
            error = relative_l2(worker.call("predict", setup_key, ts_eval), reference)
            trajectory.append((elapsed, done, error))
            if not math.isfinite(error):
                break
            if elapsed >= cap_s or (error <= min(thresholds) and elapsed >= min_s):
                break
    finally:
        with contextlib.suppress(WorkerError):
            worker.call("drop", setup_key)
    return trajectory


_REFERENCES: dict = {}


def step_flops(workers, spec: Spec, width: int, points: int) -> dict:
    """XLA's FLOP count of one training step: the hand-written JAX step (the
    arithmetic every framework does) and odefit's own."""
    ts = np.linspace(spec.t0, spec.t1, points, dtype=np.float32)
    out = {}
    for name, field in (
        ("jax-hand", "flops_per_step"),
        ("odefit", "odefit_flops_per_step"),
    ):
        worker = workers.get(name) or workers["odefit"]
        key = ("flops", spec.name, width, points, name)
        worker.call("setup", key, name, spec.name, width, 1000)
        out[field] = worker.call("step_flops", key, ts)
        worker.call("drop", key)
    return out


def reference_for(spec: Spec):
    if spec.name not in _REFERENCES:
        setup = make_setup(spec, 8)
        _REFERENCES[spec.name] = (setup.ts_eval, setup.reference)
    return _REFERENCES[spec.name]


def summarise_trajectory(trajectory, thresholds, budget_s):
    if trajectory is None:
        return None
    out = {"trajectory": [list(map(float, x)) for x in trajectory]}
    for thr in thresholds:
        hit = next((x for x in trajectory if x[2] <= thr), None)
        out[f"time_to_{thr:g}_s"] = None if hit is None else hit[0]
        out[f"steps_to_{thr:g}"] = None if hit is None else int(hit[1])
    within = [x for x in trajectory if x[0] <= budget_s]
    out["error_at_budget"] = within[-1][2] if within else None
    out["final_error"] = trajectory[-1][2]
    out["final_steps"] = int(trajectory[-1][1])
    out["final_s"] = trajectory[-1][0]
    return out


# -------------------------------------------------------------------------- reporting


def fmt(x, spec=".3g"):
    if x is None:
        return "—"
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return format(x, spec)


def _speedup_to(t: dict, threshold: float, name: str) -> list[str]:
    """A sentence: how much sooner `name` reached `threshold` than PyTorch eager
    (a lower bound when eager did not reach it before its cap), or that it did not
    reach it. A runner other than odefit's Adam runs another algorithm, which the
    sentence says, with where odefit's own Adam ended."""
    result = t["results"].get(name)
    eager = t["results"].get("pytorch-eager")
    if result is None or eager is None:
        return []
    shown = f"{threshold:.0e}".replace("e-0", "e-")
    mine = result.get(f"time_to_{threshold:g}_s")
    if mine is None:
        return [
            f"{name} did not reach {shown}: error {result['final_error']:.3g} after "
            f"{result['final_steps']} steps ({result['final_s']:.0f} s).",
            "",
        ]
    theirs = eager.get(f"time_to_{threshold:g}_s")
    if theirs is not None:
        text = f"{theirs / mine:.1f}× sooner ({mine:.1f} s against {theirs:.1f} s)"
    else:
        text = (
            f"more than {eager['final_s'] / mine:.0f}× sooner ({mine:.1f} s; "
            f"eager had not reached it after {eager['final_s']:.0f} s, at "
            f"{eager['final_error']:.2e})"
        )
    note = ""
    adam = t["results"].get("odefit")
    if name != "odefit" and adam is not None:
        note = (
            " That compares another algorithm with eager's Adam: with Adam, odefit "
            f"ended at {adam['final_error']:.2e} ({adam['final_s']:.0f} s)."
        )
    return [f"{name} reached {shown} {text} than PyTorch eager.{note}", ""]


def markdown(results: dict) -> str:
    lines = []
    meta = results["machine"]
    lines.append(
        f"Machine: {meta['cpu']}, {meta['cores']} cores, JAX {meta['jax']} on "
        f"{meta['jax_device']}, PyTorch {meta['torch']} on {meta['torch_device']} "
        f"({meta.get('torch_threads', '?')} thread(s): the faster of 1 and the "
        f"default here, {meta.get('torch_threads_steps_per_s')} steps/s); load "
        f"average {meta['load_start']} at "
        f"the start, {meta.get('load_end', '?')} at the end"
        + (
            " — **shared with other jobs, timings are noisy**."
            if meta["shared"]
            else "."
        )
    )
    lines.append(
        f"Measured float32 matmul peak: {results['peak']['peak_gflops']:.0f} GFLOP/s "
        f"(JAX {results['peak']['jax_gflops']:.0f}, PyTorch "
        f"{results['peak']['torch_gflops']:.0f}; {results['peak']['size']}² matmul)."
    )
    lines.append(f"Command: `{results['command']}`")
    lines.append("")
    for pname, p in results["problems"].items():
        lines.append(f"#### {pname}: gradients at the initial weights")
        lines.append("")
        lines.append(
            "| framework | loss | rel. diff. of loss | max rel. diff. of gradient |"
        )
        lines.append("|---|---|---|---|")
        g = p["gradient_check"]
        lines.append(f"| odefit (reference) | {g['loss']:.6g} | — | — |")
        for name, r in g["frameworks"].items():
            extra = f" ({r['variant']})" if r.get("variant") else ""
            lines.append(
                f"| {name}{extra} | {fmt(r.get('loss'), '.6g')} | "
                f"{fmt(r.get('loss_relative_error'), '.1e')} | "
                f"{fmt(r.get('grad_max_relative_error'), '.1e')} |"
            )
        lines.append("")
        s = p["steady_state"]
        lines.append(
            f"#### {pname}: steady-state training, {s['points']} points, width "
            f"{s['width']} ({s['repeats']} interleaved repeats)"
        )
        lines.append("")
        lines.append(
            "| framework | steps/s (median) | min–max | vs eager | first 10–20 steps "
            "(compile incl.) [s] | GFLOP/s | % of peak |"
        )
        lines.append("|---|---|---|---|---|---|---|")
        eager = s["results"].get("pytorch-eager", {}).get("steps_per_s")
        for name, r in s["results"].items():
            rate = r["steps_per_s"]
            gflops = s["flops_per_step"] * rate / 1e9
            lines.append(
                f"| {name} | {rate:.1f} | {r['min']:.1f}–{r['max']:.1f} | "
                f"{fmt(rate / eager if eager else None, '.2f')}× | "
                f"{r['first_steps_s']:.2f} | {gflops:.1f} | "
                f"{100 * gflops / results['peak']['peak_gflops']:.1f} |"
            )
        lines.append("")
        od = s["results"].get("odefit", {})
        if od.get("compile_time_s") is not None:
            lines.append(
                f"odefit's compile time (`FitResult.compile_time`): "
                f"{od['compile_time_s']:.1f} s."
            )
            lines.append("")
        lines.append(
            f"FLOPs per step (XLA's count of the hand-written JAX step, the same "
            f"arithmetic for every framework): {s['flops_per_step'] / 1e6:.1f} M; "
            f"odefit's own step: {s['odefit_flops_per_step'] / 1e6:.1f} M."
        )
        lines.append("")
        t = p.get("time_to_accuracy")
        if t:
            lines.append(
                f"#### {pname}: time to accuracy ({t['steps']} steps planned, Adam "
                f"1e-2→1e-4, {t['points']} random points per step with a growing "
                f"window; wall time including compilation, error checks untimed; "
                f"fixed budget {t['budget_s']:.0f} s)"
            )
            lines.append("")
            lines.append(
                "| framework | time to 1e-2 [s] | time to 1e-3 [s] | steps to 1e-3 | "
                f"error at {t['budget_s']:.0f} s | final error (steps, s) |"
            )
            lines.append("|---|---|---|---|---|---|")
            for name, r in t["results"].items():
                if r is None:
                    lines.append(f"| {name} | did not run (see below) | | | | |")
                    continue
                lines.append(
                    f"| {name} | {fmt(r['time_to_0.01_s'], '.1f')} | "
                    f"{fmt(r['time_to_0.001_s'], '.1f')} | "
                    f"{fmt(r['steps_to_0.001'], 'd')} | "
                    f"{fmt(r['error_at_budget'], '.2e')} | "
                    f"{r['final_error']:.2e} ({r['final_steps']}, "
                    f"{r['final_s']:.0f} s) |"
                )
            lines.append("")
            lines.append(
                f"A dash: not reached before the framework's time cap ({t['cap_s']})."
                f" odefit-lm: odefit's accuracy recipe on the same network and "
                f"weights: Adam for the first {LM_WARMUP} of the same points, then "
                f"`LevenbergMarquardt(points={t['points']})` (float32, like every "
                f"row), timed in segments of {LM_SEGMENT} steps."
            )
            lines.append("")
            lines.extend(_speedup_to(t, 1e-3, "odefit-lm"))
            lines.extend(_speedup_to(t, 1e-3, "odefit"))
    sweep = results.get("sweep")
    if sweep:
        lines.append(
            "#### How the cost grows (oscillator, milliseconds per training step, "
            "median)"
        )
        lines.append("")
        names = [n for n in FRAMEWORKS if any(n in r["results"] for r in sweep)]
        lines.append(
            "| points | width | " + " | ".join(names) + " | GFLOP/s (odefit) |"
        )
        lines.append("|---|---|" + "---|" * (len(names) + 1))
        for r in sweep:
            cells = []
            for n in names:
                x = r["results"].get(n)
                cells.append("—" if x is None else f"{1000 / x['steps_per_s']:.2f}")
            od = r["results"].get("odefit")
            gf = r["flops_per_step"] * od["steps_per_s"] / 1e9 if od else None
            lines.append(
                f"| {r['points']} | {r['width']} | "
                + " | ".join(cells)
                + f" | {fmt(gf, '.1f')} |"
            )
        lines.append("")
    failures = results.get("torch_compile_failures")
    if failures:
        lines.append("`torch.compile` variants that failed:")
        lines.append("")
        for f in failures:
            lines.append(f"- {f}")
        lines.append("")
    return "\n".join(lines)


def write_readme(text: str) -> None:
    path = HERE / "README.md"
    start, end = "<!-- speed:start -->", "<!-- speed:end -->"
    block = f"{start}\n{text}\n{end}"
    if path.exists():
        old = path.read_text()
        if start in old and end in old:
            new = old[: old.index(start)] + block + old[old.index(end) + len(end) :]
        else:
            new = old.rstrip() + "\n\n## Speed\n\n" + block + "\n"
    else:
        new = "# Benchmarks\n\n## Speed\n\n" + block + "\n"
    path.write_text(new)


# -------------------------------------------------------------------------------- main


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a run of a few minutes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--problems", default="oscillator,lotka-volterra")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--no-sweep", action="store_true")
    parser.add_argument("--no-accuracy", action="store_true")
    parser.add_argument("--readme", action="store_true", help="update README.md")
    parser.add_argument("--output", default=None, help="the JSON file to write")
    args = parser.parse_args(argv)
    quick = args.quick
    frameworks = [f for f in args.frameworks.split(",") if f]
    for f in frameworks:
        if f not in FRAMEWORKS:
            parser.error(f"unknown framework {f!r}; choose from {FRAMEWORKS}")
    problems = [SPECS[p] for p in args.problems.split(",") if p]
    target_s = 0.6 if quick else 2.0
    accuracy = {
        # (steps planned, points, segment, time cap per framework (s) by name,
        #  fixed budget (s))
        "oscillator": dict(
            steps=4000 if quick else 40_000,
            n=256,
            segment=500 if quick else 1000,
            caps={
                "default": 20 if quick else 150,
                "pytorch-eager": 40 if quick else 330,
                "pytorch-func": 20 if quick else 45,
            },
            budget=10 if quick else 30,
        ),
        "lotka-volterra": dict(
            steps=4000 if quick else 40_000,
            n=256,
            segment=500 if quick else 1000,
            caps={"default": 10 if quick else 30, "pytorch-func": 10 if quick else 20},
            budget=10 if quick else 30,
        ),
    }
    thresholds = (1e-2, 1e-3)

    load_start = os.getloadavg()
    results = {
        "command": "python benchmarks/vs_pytorch.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "jax": jax.__version__,
            "jax_device": f"{jax.devices()[0].device_kind} ×{jax.device_count()}",
            "torch": torch.__version__,
            "torch_device": str(torch_device()),
            "load_start": " ".join(f"{x:.1f}" for x in load_start),
            "shared": load_start[0] > 0.5 * (os.cpu_count() or 1),
        },
        "problems": {},
    }
    from _meta import complete  # benchmarks/_meta.py, beside this script

    results = complete(results, results["command"], repeats=args.repeats)
    names = list(dict.fromkeys(["odefit", *frameworks]))
    log(f"starting one process per framework: {', '.join(names)}")
    workers = {name: Worker(name) for name in names}
    try:
        log("choosing PyTorch's thread count ...")
        results["machine"].update(calibrate_torch_threads(workers))
        log("measuring the matmul peak ...")
        results["peak"] = workers["odefit"].call("matmul_peak")
        compile_failures = []
        sweep_variant = None
        for spec in problems:
            log(f"== {spec.name}")
            entry = {}
            variant = None
            ts = np.linspace(spec.t0, spec.t1, 1024, dtype=np.float32)
            if "pytorch-compile" in workers:
                key = ("reference", spec.name)
                workers["odefit"].call("setup", key, "odefit", spec.name, 64, 1000)
                _, reference = workers["odefit"].call("loss_and_grads", key, ts)
                probes = {}
                for v in COMPILE_VARIANTS:
                    log(f"probing torch.compile ({v}) ...")
                    probes[v] = probe_compile(
                        workers["pytorch-compile"], spec, v, ts, reference
                    )
                    if probes[v]["ok"]:
                        variant = v
                        break
                    compile_failures.append(f"{spec.name}, {v}: {probes[v]['error']}")
                    log(f"  failed: {probes[v]['error']}")
                entry["torch_compile_probes"] = probes
            if spec is OSCILLATOR:
                sweep_variant = variant
            log("gradient check ...")
            entry["gradient_check"] = gradient_check(workers, spec, 1024, variant)
            log("steady state ...")
            ss, failures = steady_state(
                workers, spec, 64, 1024, args.repeats, target_s, variant
            )
            entry["steady_state"] = {
                "points": 1024,
                "width": 64,
                "repeats": args.repeats,
                "results": ss,
                "failures": failures,
                **step_flops(workers, spec, 64, 1024),
            }
            for name, r in ss.items():
                log(f"  {name}: {r['steps_per_s']:.1f} steps/s")
            if not args.no_accuracy:
                cfg = accuracy[spec.name]
                log("time to accuracy ...")
                points = np.asarray(
                    _uniform_points(
                        jr.key(1),
                        0,
                        cfg["steps"],
                        cfg["n"],
                        cfg["steps"] // 2,
                        spec.t0,
                        spec.t1,
                    )
                )
                tta = {}
                extra = ["odefit-lm"] if "odefit" in frameworks else []
                for name in [*frameworks, *extra]:
                    if name == "pytorch-compile" and variant is None:
                        tta[name] = None
                        continue
                    cap = cfg["caps"].get(name, cfg["caps"]["default"])
                    log(f"  {name} (cap {cap} s) ...")
                    try:
                        traj = time_to_accuracy(
                            workers.get(name, workers["odefit"]),
                            spec,
                            name,
                            steps=cfg["steps"],
                            n=cfg["n"],
                            segment=cfg["segment"],
                            cap_s=cap,
                            min_s=cfg["budget"],
                            variant=variant,
                            thresholds=thresholds,
                            points=points,
                        )
                    except WorkerError as e:
                        log(f"    failed: {str(e).splitlines()[-1]}")
                        tta[name] = None
                        continue
                    tta[name] = summarise_trajectory(traj, thresholds, cfg["budget"])
                    r = tta[name]
                    log(
                        f"    final error {r['final_error']:.2e} after "
                        f"{r['final_steps']} steps, {r['final_s']:.0f} s"
                    )
                entry["time_to_accuracy"] = {
                    "steps": cfg["steps"],
                    "points": cfg["n"],
                    "segment": cfg["segment"],
                    "cap_s": cfg["caps"],
                    "budget_s": cfg["budget"],
                    "results": tta,
                }
            results["problems"][spec.name] = entry
        if not args.no_sweep and OSCILLATOR in problems:
            log("== sweep")
            sweep = []
            point_counts = (256, 1024, 4096) if quick else (256, 1024, 4096, 16384)
            widths = (32, 64, 128) if quick else (32, 64, 128, 256)
            configs = [(q, 64) for q in point_counts] + [
                (1024, w) for w in widths if w != 64
            ]
            for points, width in configs:
                # torch.func is the slowest by far: only up to 1024 points.
                chosen = {
                    k: w
                    for k, w in workers.items()
                    if k in frameworks and (k != "pytorch-func" or points <= 1024)
                }
                ss, failures = steady_state(
                    chosen,
                    OSCILLATOR,
                    width,
                    points,
                    args.repeats,
                    target_s * (0.5 if points >= 4096 else 1.0),
                    sweep_variant,
                )
                sweep.append(
                    {
                        "points": points,
                        "width": width,
                        "results": ss,
                        "failures": failures,
                        **step_flops(workers, OSCILLATOR, width, points),
                    }
                )
                log(
                    f"  {points} points, width {width}: "
                    + ", ".join(
                        f"{k} {1000 / v['steps_per_s']:.2f} ms" for k, v in ss.items()
                    )
                )
            results["sweep"] = sweep
    finally:
        for worker in workers.values():
            worker.close()
    results["torch_compile_failures"] = compile_failures
    results["machine"]["load_end"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    out = (
        Path(args.output)
        if args.output
        else (
            HERE / "results" / ("vs_pytorch_quick.json" if quick else "vs_pytorch.json")
        )
    )
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    text = markdown(results)
    print(text)
    if args.readme:
        write_readme(text)
    return results


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
