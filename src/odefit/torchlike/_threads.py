"""Training in threads on shared weights: PyTorch's Hogwild against the JAX ways.

PyTorch's autograd notes warn that `backward()` called from several threads on
shared parameters ("Hogwild" CPU training) accumulates into the same `.grad`
non-deterministically, and recommend `torch.autograd.grad` instead. Hogwild
training goes further: every thread also runs `optimizer.step()`, an in-place
update of the shared weights, without a lock. In JAX values are immutable, so the
same loop written naively (read the weights, compute a gradient, write the new
weights back) loses updates instead. These checks run both, and the two ways JAX
programs train in parallel instead, with threaded optimiser steps:

- synchronous data parallelism (what `fit(..., devices=...)` does): every worker
  computes the gradient of its batch at the *same* weights, the gradients are
  averaged, one update is applied;
- independent fits (what `fit_ensemble` does): every worker trains its own copy.

Both are exact: threaded equals serial bit for bit, and equals PyTorch's
equivalent to rounding. PyTorch is imported lazily, as in `_crosscheck`.
"""

import threading
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

from ._grad import grad

WORKERS = 4
STEPS = 10
LEARNING_RATE = 0.05
HOGWILD_RUNS = 3


class Observation(NamedTuple):
    """A measured fact about threaded training that is not a PyTorch-vs-odefit
    agreement: `value` with what it means (`note`), and whether odefit's
    checks require it to be exactly zero (`exact`)."""

    name: str
    value: float
    note: str
    exact: bool


def setup():
    """The shared model (float64 MLP 1→8→8→1, tanh) and one batch per worker."""
    mlp = eqx.nn.MLP(1, 1, 8, 2, activation=jnp.tanh, dtype=jnp.float64, key=jr.key(1))
    batches = [
        np.linspace(-1.0, 1.0, 5)[:, None] * (k + 1) / WORKERS for k in range(WORKERS)
    ]
    return mlp, batches


def mlp_loss(mlp, xs):
    return jnp.mean((jax.vmap(mlp)(xs) - jnp.sin(3 * xs)) ** 2)


def flat(mlp) -> np.ndarray:
    leaves = [(layer.weight, layer.bias) for layer in mlp.layers]
    return np.concatenate([np.ravel(np.asarray(x)) for pair in leaves for x in pair])


def in_threads(work: Callable[[int], Any], n: int = WORKERS) -> list[Any]:
    """Runs `work(k)` for k = 0..n-1 in n threads released together."""
    results: list[Any] = [None] * n
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def target(k):
        try:
            barrier.wait()
            results[k] = work(k)
        except BaseException as e:  # noqa: BLE001 -- re-raised in the caller
            errors.append(e)

    threads = [threading.Thread(target=target, args=(k,)) for k in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


# -- JAX ---------------------------------------------------------------------------

_sgd = optax.sgd(LEARNING_RATE)


@eqx.filter_jit
def _grad_of(mlp, xs):
    (g,) = grad(lambda m: mlp_loss(m, xs), mlp)
    return g


@eqx.filter_jit
def _apply(mlp, g, opt_state):
    updates, opt_state = _sgd.update(g, opt_state, mlp)
    return eqx.apply_updates(mlp, updates), opt_state


def _mean(grads):
    return jax.tree.map(lambda *g: sum(g) / len(g), *grads)


def jax_synchronous(mlp, batches, threaded: bool):
    """Synchronous data parallelism: each step, every worker's gradient at the same
    weights (in threads, or one after the other), averaged in a fixed order, one
    update."""
    opt_state = _sgd.init(mlp)
    for _ in range(STEPS):
        if threaded:
            grads = in_threads(lambda k, m=mlp: _grad_of(m, jnp.asarray(batches[k])))
        else:
            grads = [_grad_of(mlp, jnp.asarray(b)) for b in batches]
        mlp, opt_state = _apply(mlp, _mean(grads), opt_state)
    return mlp


def jax_independent(mlp, batches, threaded: bool):
    """Independent fits: each worker trains its own copy on its batch."""

    def train(k):
        m, opt_state = mlp, _sgd.init(mlp)
        for _ in range(STEPS):
            m, opt_state = _apply(m, _grad_of(m, jnp.asarray(batches[k])), opt_state)
        return m

    if threaded:
        return in_threads(train)
    return [train(k) for k in range(WORKERS)]


def jax_shared_variable(mlp, batches, *, lock: bool, forced_race: bool):
    """The Hogwild loop ported literally: the weights live in one shared variable;
    each worker reads them, computes its gradient and writes the updated weights
    back, `STEPS` times. Without a lock, a worker that read before another wrote
    overwrites that worker's update. `forced_race` makes every round read before
    anyone writes (a barrier between read and write): the race made certain.

    Returns the final weights, the number of updates lost (those not on the chain
    of writes that leads to the final weights) and the order of the writes."""
    shared = {"mlp": mlp, "version": 0}
    step_lock = threading.Lock()  # the optional lock around the whole step
    bookkeeping = threading.Lock()  # only keeps the record below consistent
    based_on = {0: None}  # version -> the version its weights were computed from
    order: list[int] = []
    between = threading.Barrier(WORKERS) if forced_race else None

    def step(k, xs):
        read, version = shared["mlp"], shared["version"]
        g = _grad_of(read, xs)
        new = _plain_step(read, g)
        if between is not None:
            between.wait()
        with bookkeeping:
            written = len(based_on)
            based_on[written] = version
            shared["mlp"], shared["version"] = new, written
            order.append(k)
        if between is not None:
            between.wait()

    def work(k):
        xs = jnp.asarray(batches[k])
        for _ in range(STEPS):
            if lock:
                with step_lock:
                    step(k, xs)
            else:
                step(k, xs)

    in_threads(work)
    kept, version = 0, shared["version"]
    while based_on[version] is not None:
        kept, version = kept + 1, based_on[version]
    return shared["mlp"], len(order) - kept, order


@eqx.filter_jit
def _plain_step(mlp, g):
    """An SGD step written out, as a Hogwild worker would: weights - lr * grad."""
    return eqx.apply_updates(mlp, jax.tree.map(lambda d: -LEARNING_RATE * d, g))


def jax_replay(mlp, batches, order: list[int]):
    """The serial run that applies the workers' updates in `order`."""
    for k in order:
        g = _grad_of(mlp, jnp.asarray(batches[k]))
        mlp = _plain_step(mlp, g)
    return mlp


# -- PyTorch -------------------------------------------------------------------------


def _torch_setup(mlp):
    from ._torch_side import _import_torch, torch_net

    torch = _import_torch()
    return torch, torch_net(mlp)


def _torch_flat(net) -> np.ndarray:
    return np.concatenate(
        [
            np.ravel(p.detach().numpy())
            for layer in net
            if hasattr(layer, "weight")
            for p in (layer.weight, layer.bias)
        ]
    )


def _torch_loss(torch, net, batch):
    xs = torch.tensor(batch, dtype=torch.float64)
    return torch.mean((net(xs) - torch.sin(3 * xs)) ** 2)


# Hogwild in threads can crash the interpreter (a segmentation fault when one
# thread's zero_grad() frees the .grad another is accumulating into), so each run
# is a child process that imports only PyTorch and NumPy.
_HOGWILD_CHILD = """
import sys, threading
import numpy as np
import torch

data = np.load(sys.argv[1])
through_data = sys.argv[3] == "data"
steps, lr, workers = int(data["steps"]), float(data["lr"]), int(data["workers"])
arrays = [data[f"p{i}"] for i in range(int(data["n"]))]
layers = []
for i in range(0, len(arrays), 2):
    weight, bias = arrays[i], arrays[i + 1]
    layer = torch.nn.Linear(weight.shape[1], weight.shape[0], dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        layer.bias.copy_(torch.tensor(bias))
    layers += [layer, torch.nn.Tanh()]
net = torch.nn.Sequential(*layers[:-1])
params = list(net.parameters())
skipped = [0]
errors = []
barrier = threading.Barrier(workers)

def work(k):
    xs = torch.tensor(data[f"batch{k}"], dtype=torch.float64)
    optimizer = torch.optim.SGD(params, lr=lr)
    barrier.wait()
    try:
        for _ in range(steps):
            optimizer.zero_grad()
            torch.mean((net(xs) - torch.sin(3 * xs)) ** 2).backward()
            if not through_data:
                optimizer.step()
                continue
            for p in params:
                g = p.grad  # None when another thread zeroed it meanwhile
                if g is None:
                    skipped[0] += 1
                else:
                    p.data.sub_(lr * g)
    except RuntimeError as e:
        errors.append(str(e).split(":")[0])

threads = [threading.Thread(target=work, args=(k,)) for k in range(workers)]
for t in threads:
    t.start()
for t in threads:
    t.join()
flat = np.concatenate([p.detach().numpy().ravel() for p in params])
np.savez(sys.argv[2], weights=flat, skipped=skipped[0], error=(errors or [""])[0])
"""


class HogwildRun(NamedTuple):
    weights: np.ndarray | None  # None when a thread raised or the process crashed
    error: str | None
    skipped: int


def torch_hogwild_threads(mlp, batches, *, through_data: bool) -> HogwildRun:
    """Hogwild in threads: one shared network, `zero_grad()`, `backward()` and an
    SGD step per thread with no lock. The threads share the parameters *and* their
    `.grad`: a thread's `zero_grad()` can erase another's gradient before it is
    used, and a step can apply several threads' sum.

    With `through_data=False` the step is `optimizer.step()`; autograd then often
    refuses a `backward()` whose saved weights another thread's step changed in
    place. With `through_data=True` it is `p.data -= lr * p.grad`, the old Hogwild
    idiom that bypasses that check, so nothing stops a gradient computed from a mix
    of old and new weights; a step whose `.grad` another thread erased is skipped
    and counted. Runs in a child process (see above)."""
    import os
    import subprocess
    import sys
    import tempfile

    arrays = [np.asarray(x) for layer in mlp.layers for x in (layer.weight, layer.bias)]
    with tempfile.TemporaryDirectory() as tmp:
        inputs, outputs = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        np.savez(
            inputs,
            steps=STEPS,
            lr=LEARNING_RATE,
            workers=WORKERS,
            n=len(arrays),
            **{f"p{i}": a for i, a in enumerate(arrays)},
            **{f"batch{k}": b for k, b in enumerate(batches)},
        )
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                _HOGWILD_CHILD,
                inputs,
                outputs,
                "data" if through_data else "step",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if proc.returncode != 0:
            reason = (
                f"the process crashed (signal {-proc.returncode})"
                if proc.returncode < 0
                else f"the process failed: {proc.stderr.strip()[-200:]}"
            )
            return HogwildRun(None, reason, 0)
        out = np.load(outputs)
        error = str(out["error"]) or None
        weights = None if error else np.asarray(out["weights"])
        return HogwildRun(weights, error, int(out["skipped"]))


def torch_round_robin(mlp, batches) -> np.ndarray:
    """The same updates one after the other, workers in turn: what Hogwild would
    give if its threads never overlapped and took turns."""
    torch, net = _torch_setup(mlp)
    optimizer = torch.optim.SGD(net.parameters(), lr=LEARNING_RATE)
    for _ in range(STEPS):
        for batch in batches:
            optimizer.zero_grad()
            _torch_loss(torch, net, batch).backward()
            optimizer.step()
    return _torch_flat(net)


def torch_synchronous(mlp, batches) -> np.ndarray:
    """Synchronous data parallelism in PyTorch (what DistributedDataParallel
    computes): each step the mean of the workers' losses, one `backward()`, one
    `step()`."""
    torch, net = _torch_setup(mlp)
    optimizer = torch.optim.SGD(net.parameters(), lr=LEARNING_RATE)
    for _ in range(STEPS):
        optimizer.zero_grad()
        losses = [_torch_loss(torch, net, b) for b in batches]
        (sum(losses) / len(losses)).backward()
        optimizer.step()
    return _torch_flat(net)


def torch_independent(mlp, batches) -> list[np.ndarray]:
    """Independent fits in PyTorch threads: each its own copy and optimiser."""

    def work(k):
        torch, net = _torch_setup(mlp)
        optimizer = torch.optim.SGD(net.parameters(), lr=LEARNING_RATE)
        for _ in range(STEPS):
            optimizer.zero_grad()
            _torch_loss(torch, net, batches[k]).backward()
            optimizer.step()
        return _torch_flat(net)

    return in_threads(work)


# -- the report ------------------------------------------------------------------


def compare(with_torch: bool) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The agreements (odefit's values, PyTorch's): synchronous data parallelism
    and independent fits, threaded in JAX, against PyTorch."""
    mlp, batches = setup()
    ours: dict[str, Any] = {
        f"synchronous, {WORKERS} workers: weights": flat(
            jax_synchronous(mlp, batches, threaded=True)
        )
    }
    for k, m in enumerate(jax_independent(mlp, batches, threaded=True)):
        ours[f"independent fit {k}: weights"] = flat(m)
    theirs = None
    if with_torch:
        theirs = {
            f"synchronous, {WORKERS} workers: weights": torch_synchronous(mlp, batches)
        }
        for k, w in enumerate(torch_independent(mlp, batches)):
            theirs[f"independent fit {k}: weights"] = w
    return ours, theirs


def _max_diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def observations(with_torch: bool) -> list[Observation]:
    """What threaded training on shared weights loses or changes, and what stays
    exact."""
    mlp, batches = setup()
    out = []
    sync_t = flat(jax_synchronous(mlp, batches, threaded=True))
    sync_s = flat(jax_synchronous(mlp, batches, threaded=False))
    out.append(
        Observation(
            "JAX synchronous data parallelism: |threaded - serial|",
            _max_diff(sync_t, sync_s),
            "exact: every worker's gradient at the same weights, averaged in order",
            True,
        )
    )
    independent_t = jax_independent(mlp, batches, threaded=True)
    independent_s = jax_independent(mlp, batches, threaded=False)
    out.append(
        Observation(
            "JAX independent fits: |threaded - serial|",
            max(
                _max_diff(flat(a), flat(b))
                for a, b in zip(independent_t, independent_s, strict=True)
            ),
            "exact: nothing is shared",
            True,
        )
    )
    locked, lost, order = jax_shared_variable(
        mlp, batches, lock=True, forced_race=False
    )
    out.append(
        Observation(
            "JAX shared variable with a lock: |threaded - serial replay|",
            _max_diff(flat(locked), flat(jax_replay(mlp, batches, order))),
            f"exact, and no update lost ({lost} of {WORKERS * STEPS}); the order is "
            "the scheduler's",
            True,
        )
    )
    _, lost_forced, _ = jax_shared_variable(mlp, batches, lock=False, forced_race=True)
    out.append(
        Observation(
            "JAX shared variable, no lock, all read before any write: updates lost",
            float(lost_forced),
            f"of {WORKERS * STEPS}: each round keeps only the last write",
            False,
        )
    )
    _, lost_free, _ = jax_shared_variable(mlp, batches, lock=False, forced_race=False)
    out.append(
        Observation(
            "JAX shared variable, no lock, free-running threads: updates lost",
            float(lost_free),
            f"of {WORKERS * STEPS}; depends on the scheduler, run to run",
            False,
        )
    )
    if with_torch:
        round_robin = torch_round_robin(mlp, batches)
        n_params = 2 * len(mlp.layers)
        variants = ((False, "optimizer.step()"), (True, "p.data -= lr * p.grad"))
        for through_data, label in variants:
            runs = [
                torch_hogwild_threads(mlp, batches, through_data=through_data)
                for _ in range(HOGWILD_RUNS)
            ]
            errors = sorted({r.error for r in runs if r.error is not None})
            out.append(
                Observation(
                    f"PyTorch Hogwild threads, {label}: runs that failed",
                    float(sum(r.error is not None for r in runs)),
                    f"of {HOGWILD_RUNS}" + (": " + "; ".join(errors) if errors else ""),
                    False,
                )
            )
            finished = [r.weights for r in runs if r.weights is not None]
            if finished:
                out.append(
                    Observation(
                        f"PyTorch Hogwild threads, {label}: |weights - in turn|",
                        max(_max_diff(w, round_robin) for w in finished),
                        f"max over the {len(finished)} runs that finished",
                        False,
                    )
                )
            if len(finished) > 1:
                out.append(
                    Observation(
                        f"PyTorch Hogwild threads, {label}: |run - run|",
                        max(_max_diff(a, b) for a in finished for b in finished),
                        "non-deterministic: 0 only if the threads never overlapped",
                        False,
                    )
                )
            if through_data:
                out.append(
                    Observation(
                        f"PyTorch Hogwild threads, {label}: updates skipped",
                        float(sum(r.skipped for r in runs)),
                        f"of {HOGWILD_RUNS * WORKERS * STEPS * n_params} parameter "
                        "updates: .grad erased by another thread's zero_grad()",
                        False,
                    )
                )
    return out


def format_observations(rows: list[Observation]) -> str:
    width = max(len(r.name) for r in rows)
    lines = [f"{'threaded training on shared weights':<{width}}  value     meaning"]
    lines.append(f"{'-' * width}  --------  -------")
    for r in rows:
        value = f"{r.value:.1e}" if not float(r.value).is_integer() else f"{r.value:g}"
        lines.append(f"{r.name:<{width}}  {value:<8}  {r.note}")
    return "\n".join(lines)
