"""Atomic checkpoints of a fit: save, load, and the resume logic `fit` uses.

File layout (all integers little-endian):

```
b"ODEFITCK"                      8 bytes, the magic
header length                    8 bytes, unsigned
header                           UTF-8 JSON (no pickle anywhere)
SHA-256 of the header            32 bytes
payload                          the sections and history blobs, back to back
```

The header records the format version, the step count, the stop reason, the
problem's metadata, and for every section (`model`, `args`, `opt_state`,
`collocation_state`, `key`) its byte range, its SHA-256 and the path, shape and
dtype of every array leaf (the fingerprint that a template must match). Sections
are written with `equinox.tree_serialise_leaves`; only arrays are stored, so the
non-array parts of every PyTree (functions, static fields) always come from the
template the caller supplies: the same script that started the fit.

Files are written to a temporary file in the same directory, flushed, fsynced and
renamed over the destination, so a reader sees either the previous checkpoint or
the new one, never a half-written file, whenever the writer is killed.
"""

import hashlib
import io
import json
import os
import struct
import tempfile
from collections.abc import Mapping
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
from jaxtyping import PyTree

from ._collocation import AbstractCollocation
from ._custom_types import Key
from ._models.base import AbstractModel
from ._objective import make_objective, split
from ._problems import AbstractProblem
from ._result import RUNNING as RUNNING, FitResult
from ._trainers import as_trainer
from ._unknown import resolve_args

MAGIC = b"ODEFITCK"
VERSION = 1
SECTIONS = ("model", "args", "opt_state", "collocation_state", "key")

_DIGEST = 32
_U64 = struct.Struct("<Q")


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(
        x.dtype, jax.dtypes.prng_key
    )


def _leaf_dtype(x) -> str:
    if _is_key(x):
        return f"key<{jr.key_impl(x)}>"
    return str(np.dtype(x.dtype))


def _arrays(tree: PyTree) -> PyTree:
    """The array leaves of `tree` (other leaves become `None`)."""
    return eqx.filter(tree, eqx.is_array)


def _fingerprint(tree: PyTree) -> list[list]:
    leaves = jtu.tree_flatten_with_path(_arrays(tree))[0]
    return [[jtu.keystr(path), list(np.shape(x)), _leaf_dtype(x)] for path, x in leaves]


def _to_numpy(x) -> np.ndarray:
    return np.asarray(jax.device_get(jr.key_data(x) if _is_key(x) else x))


def _encode(tree: PyTree) -> bytes:
    storable = jtu.tree_map(_to_numpy, _arrays(tree))
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, storable)
    return buffer.getvalue()


def _encode_array(x: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(x), allow_pickle=False)
    return buffer.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def problem_metadata(problem: AbstractProblem, model: AbstractModel) -> dict:
    """What a checkpoint records about the fit it belongs to."""
    state = problem.state
    return {
        "problem": type(problem).__name__,
        "t0": float(problem.t0),
        "t1": float(problem.t1),
        "state_shape": list(state.shape),
        "state_dtype": str(state.dtype),
        "model": type(model).__name__,
    }


def _atomic_write(path: str, data: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory
    )
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Includes KeyboardInterrupt: the destination is untouched.
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    # Make the rename itself durable (POSIX; not possible everywhere).
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def write(
    path: str | os.PathLike,
    *,
    model: AbstractModel,
    problem: AbstractProblem,
    opt_state: Any,
    collocation_state: Any,
    key: Key,
    steps: int,
    history: Mapping[str, np.ndarray],
    stop_reason: str,
) -> None:
    """Writes a checkpoint atomically (temporary file, fsync, rename)."""
    path = os.fspath(path)
    trees = {
        "model": model,
        "args": problem.args,
        "opt_state": opt_state,
        "collocation_state": collocation_state,
        "key": key,
    }
    blobs: list[bytes] = []
    offset = 0
    sections = {}
    for name in SECTIONS:
        data = _encode(trees[name])
        sections[name] = {
            "offset": offset,
            "size": len(data),
            "sha256": _sha256(data),
            "leaves": _fingerprint(trees[name]),
        }
        blobs.append(data)
        offset += len(data)
    history_index = []
    for name, values in history.items():
        data = _encode_array(values)
        history_index.append({"name": name, "offset": offset, "size": len(data)})
        blobs.append(data)
        offset += len(data)
    payload = b"".join(blobs)
    header = {
        "format": "odefit-checkpoint",
        "version": VERSION,
        "steps": int(steps),
        "stop_reason": stop_reason,
        "metadata": problem_metadata(problem, model),
        "sections": sections,
        "history": history_index,
        "payload_size": len(payload),
        "payload_sha256": _sha256(payload),
    }
    header_bytes = json.dumps(header, sort_keys=True).encode("utf-8")
    data = b"".join(
        [
            MAGIC,
            _U64.pack(len(header_bytes)),
            header_bytes,
            hashlib.sha256(header_bytes).digest(),
            payload,
        ]
    )
    _atomic_write(path, data)


class Checkpoint(NamedTuple):
    """A checkpoint read from disk and verified against its checksums."""

    path: str
    header: dict
    payload: bytes

    @property
    def steps(self) -> int:
        return self.header["steps"]

    @property
    def stop_reason(self) -> str:
        return self.header["stop_reason"]

    def blob(self, entry: Mapping) -> bytes:
        return self.payload[entry["offset"] : entry["offset"] + entry["size"]]


def _corrupt(path: str, what: str) -> ValueError:
    return ValueError(
        f"Checkpoint {path!r} is unreadable: {what}. It has been left as it is; "
        "delete it, or pass another `checkpoint_path` (or `resume=False` to start "
        "afresh and overwrite it)."
    )


def read(path: str | os.PathLike) -> Checkpoint:
    """Reads a checkpoint and verifies its magic, version, sizes and checksums.

    Raises `ValueError` naming what is wrong (not a checkpoint, truncated,
    corrupted, written by a newer version) and `FileNotFoundError` when `path`
    does not exist.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"`path` must be a str or os.PathLike, got {type(path).__name__}."
        )
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        if MAGIC.startswith(data):
            raise _corrupt(path, f"it is truncated ({len(data)} bytes)")
        raise _corrupt(path, "it is not an odefit checkpoint (wrong magic bytes)")
    start = len(MAGIC) + _U64.size
    if len(data) < start:
        raise _corrupt(path, f"it is truncated ({len(data)} bytes)")
    (header_size,) = _U64.unpack(data[len(MAGIC) : start])
    end = start + header_size + _DIGEST
    if len(data) < end:
        raise _corrupt(
            path, f"it is truncated ({len(data)} bytes, the header alone needs {end})"
        )
    header_bytes = data[start : start + header_size]
    if hashlib.sha256(header_bytes).digest() != data[start + header_size : end]:
        raise _corrupt(path, "its header is corrupted (checksum mismatch)")
    try:
        header = json.loads(header_bytes.decode("utf-8"))
        version = header["version"]
        payload_size = header["payload_size"]
        payload_sha256 = header["payload_sha256"]
    except (ValueError, KeyError, TypeError) as e:
        raise _corrupt(path, f"its header is malformed ({e})") from e
    if header.get("format") != "odefit-checkpoint":
        raise _corrupt(path, "its header is not an odefit checkpoint header")
    if version != VERSION:
        raise ValueError(
            f"Checkpoint {path!r} has format version {version}; this version of "
            f"odefit reads version {VERSION}."
        )
    payload = data[end:]
    if len(payload) < payload_size:
        raise _corrupt(
            path,
            f"it is truncated ({len(data)} bytes, expected {end + payload_size})",
        )
    if len(payload) > payload_size:
        raise _corrupt(
            path,
            f"it has {len(payload) - payload_size} unexpected trailing bytes",
        )
    if _sha256(payload) != payload_sha256:
        raise _corrupt(path, "its data is corrupted (checksum mismatch)")
    return Checkpoint(path, header, payload)


def _describe(entry) -> str:
    path, shape, dtype = entry
    return f"{path or '(root)'} with shape {tuple(shape)} and dtype {dtype}"


def restore(checkpoint: Checkpoint, name: str, like: PyTree, what: str) -> PyTree:
    """Section `name` of `checkpoint`, deserialised into the template `like`.

    `what` names the template in error messages (e.g. "`model`").
    """
    section = checkpoint.header["sections"][name]
    saved = [list(e) for e in section["leaves"]]
    expected = _fingerprint(like)
    if saved != expected:
        detail = f"it holds {len(saved)} arrays and {what} has {len(expected)}"
        for s, e in zip(saved, expected, strict=False):
            if s != e:
                detail = (
                    f"the checkpoint has {_describe(s)} where {what} has {_describe(e)}"
                )
                break
        raise ValueError(
            f"Checkpoint {checkpoint.path!r} does not match this fit: its "
            f"`{name}` differs ({detail}). Build the problem, model and "
            "optimiser exactly as in the run that wrote it, or use another "
            "`checkpoint_path`."
        )
    arrays = _arrays(like)
    storable_like = jtu.tree_map(_to_numpy_like, arrays)
    loaded = eqx.tree_deserialise_leaves(
        io.BytesIO(checkpoint.blob(section)), storable_like
    )

    def to_leaf(template, value):
        if _is_key(template):
            return jr.wrap_key_data(value, impl=jr.key_impl(template))
        return jnp.asarray(value)

    restored = jtu.tree_map(to_leaf, arrays, loaded)
    return eqx.combine(restored, like)


def _to_numpy_like(x) -> np.ndarray:
    """A zero array shaped and typed like what `_to_numpy(x)` stores."""
    if _is_key(x):
        x = jax.eval_shape(jr.key_data, x)
    return np.zeros(x.shape, x.dtype)


def read_history(checkpoint: Checkpoint) -> dict[str, np.ndarray]:
    return {
        entry["name"]: np.load(io.BytesIO(checkpoint.blob(entry)), allow_pickle=False)
        for entry in checkpoint.header["history"]
    }


def check_metadata(
    checkpoint: Checkpoint, problem: AbstractProblem, model: AbstractModel
) -> None:
    saved = checkpoint.header["metadata"]
    current = problem_metadata(problem, model)
    for field, value in current.items():
        if saved.get(field) != value:
            raise ValueError(
                f"Checkpoint {checkpoint.path!r} was written for a different "
                f"problem or model: its {field} is {saved.get(field)!r} but this "
                f"fit's is {value!r}."
            )


def _same_key(a, b) -> bool:
    if _is_key(a) != _is_key(b):
        return False
    if _is_key(a):
        if jr.key_impl(a) != jr.key_impl(b):
            return False
        a, b = jr.key_data(a), jr.key_data(b)
    return np.shape(a) == np.shape(b) and bool(np.array_equal(a, b))


class Resumed(NamedTuple):
    model: AbstractModel
    args: Any
    opt_state: Any
    collocation_state: Any
    steps: int
    history: dict[str, np.ndarray]
    stop_reason: str


def resume(
    path: str | os.PathLike,
    *,
    problem: AbstractProblem,
    model: AbstractModel,
    opt_state: Any,
    collocation_state: Any,
    key: Key,
    steps: int,
) -> Resumed:
    """The state of the fit saved at `path`, checked against the current fit's
    problem, model, optimiser state, collocation state, key and step budget."""
    checkpoint = read(path)
    check_metadata(checkpoint, problem, model)
    saved_key = restore(checkpoint, "key", key, "`key`")
    if not _same_key(saved_key, key):
        raise ValueError(
            f"Checkpoint {checkpoint.path!r} was written by a fit with a different "
            "`key`; pass the same key to resume it (so the result is the one an "
            "uninterrupted run would give), or `resume=False` to start afresh."
        )
    if checkpoint.steps > steps:
        raise ValueError(
            f"Checkpoint {checkpoint.path!r} is at step {checkpoint.steps}, past "
            f"`steps`={steps}; ask for at least {checkpoint.steps} steps."
        )
    return Resumed(
        model=restore(checkpoint, "model", model, "`model`"),
        args=restore(checkpoint, "args", problem.args, "`problem.args`"),
        opt_state=restore(checkpoint, "opt_state", opt_state, "the optimiser's state"),
        collocation_state=restore(
            checkpoint,
            "collocation_state",
            collocation_state,
            "the collocation's state",
        ),
        steps=checkpoint.steps,
        history=read_history(checkpoint),
        stop_reason=checkpoint.stop_reason,
    )


def save(path: str | os.PathLike, result) -> None:
    """Saves a fit's result to `path`, atomically.

    Stores the model, the problem's `Unknown`s, the optimiser and collocation
    states, the key, the step count, the history and the problem's metadata. Only
    arrays are stored (no pickle): functions and other static parts come back from
    the templates given to [`odefit.load`][] or [`odefit.fit`][].

    The file is written to a temporary file beside `path`, flushed to disk and
    renamed over `path`: a crash or kill at any moment leaves either the previous
    file or the new one, never a partial one.

    **Arguments:**

    - `path`: where to write (an existing file is replaced).
    - `result`: an [`odefit.FitResult`][].

    **Returns:** nothing.

    **Example:**

    ```python
    import jax, odefit

    problem = odefit.IVP(lambda t, y, args: -y, t0=0.0, t1=1.0, y0=1.0)
    model = odefit.PINN(problem, width=16, depth=2, key=jax.random.key(0))
    result = odefit.fit(problem, model, steps=100, key=jax.random.key(1),
                        progress=False)
    odefit.save("run.ckpt", result)
    ```
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"`path` must be a str or os.PathLike, got {type(path).__name__}."
        )
    if not isinstance(result, FitResult):
        raise TypeError(
            f"`result` must be an odefit.FitResult, got {type(result).__name__}."
        )
    write(
        path,
        model=result.model,
        problem=result.problem,
        opt_state=result.opt_state,
        collocation_state=result.collocation_state,
        key=result.key,
        steps=result.steps,
        history=result.history,
        stop_reason=result.stop_reason,
    )


def _key_template(checkpoint: Checkpoint):
    (entry,) = checkpoint.header["sections"]["key"]["leaves"] or [None]
    if entry is None:
        raise _corrupt(checkpoint.path, "it holds no key")
    _, shape, dtype = entry
    if dtype.startswith("key<"):
        impl = dtype[len("key<") : -1]
        return jr.wrap_key_data(jnp.zeros(shape + [2], jnp.uint32), impl=impl)
    return jnp.zeros(shape, dtype)


def load(
    path: str | os.PathLike,
    problem: AbstractProblem,
    model: AbstractModel,
    *,
    optimizer=None,
    collocation=None,
):
    """Loads a checkpoint written by [`odefit.save`][] or by `fit(...,
    checkpoint_path=...)`.

    A checkpoint holds arrays only, so `load` needs templates to put them into:
    the problem and model built as in the script that wrote it (their weights are
    replaced by the saved ones; the problem's `Unknown`s by their saved values).

    To resume a fit you do not need `load`: run the same script again, `fit(...,
    checkpoint_path=path)` continues from the file.

    **Arguments:**

    - `path`: the checkpoint file.
    - `problem`, `model`: templates, built as in the run that wrote the file.
    - `optimizer`: the optimiser that run used, to restore its state too;
        default: `opt_state` is `None` in the result.
    - `collocation`: the collocation that run used, to restore its state too;
        default: `collocation_state` is `None` in the result.

    **Returns:** an [`odefit.FitResult`][] with the saved model, problem, history,
    step count, stop reason and key (`wall_time`, `compile_time` are NaN).

    Raises `ValueError` for a truncated, corrupted or foreign file, and for one
    written by a different problem or model shape, naming the first difference.

    **Example:**

    ```python
    import jax, jax.numpy as jnp, odefit

    # The same problem and model as in the script that saved "run.ckpt"
    # (see odefit.save); their weights are replaced by the saved ones.
    problem = odefit.IVP(lambda t, y, args: -y, t0=0.0, t1=1.0, y0=1.0)
    model = odefit.PINN(problem, width=16, depth=2, key=jax.random.key(0))
    odefit.save("run.ckpt", odefit.fit(problem, model, steps=100,
                                       key=jax.random.key(1), progress=False))
    result = odefit.load("run.ckpt", problem, model)
    pred = jax.vmap(result.model)(jnp.linspace(0.0, 1.0, 11))
    ```
    """
    if not isinstance(problem, AbstractProblem):
        raise TypeError(
            "`problem` must be an odefit problem (IVP, SecondOrderIVP, BVP), got "
            f"{type(problem).__name__}."
        )
    if not isinstance(model, AbstractModel):
        raise TypeError(
            f"`model` must be an odefit model such as odefit.PINN, got "
            f"{type(model).__name__}."
        )
    if collocation is not None and not isinstance(collocation, AbstractCollocation):
        raise TypeError(
            "`collocation` must be an odefit collocation such as odefit.Grid(n), "
            f"got {type(collocation).__name__}."
        )
    checkpoint = read(path)
    check_metadata(checkpoint, problem, model)
    model = restore(checkpoint, "model", model, "`model`")
    args = restore(checkpoint, "args", problem.args, "`problem.args`")
    problem = eqx.tree_at(lambda p: p.args, problem, args, is_leaf=lambda x: x is None)
    opt_state = None
    if optimizer is not None:
        # The same objective `fit` hands to `trainer.init` (no data term: a
        # trainer's state does not depend on it).
        steps = max(checkpoint.steps, 1)
        trainer = as_trainer(optimizer, steps)
        params, static = split(model, args)
        sampler = (
            trainer.default_collocation(steps) if collocation is None else collocation
        )
        like = eqx.filter_eval_shape(
            lambda p: make_objective(problem, static).init(
                trainer, sampler, p, key=jr.key(0)
            ),
            params,
        )
        like = jtu.tree_map(
            lambda x: (
                jnp.zeros(x.shape, x.dtype)
                if isinstance(x, jax.ShapeDtypeStruct)
                else x
            ),
            like,
        )
        opt_state = restore(checkpoint, "opt_state", like, "`optimizer`'s state")
    collocation_state = None
    if collocation is not None:
        like = collocation.init(problem.t0, problem.t1, problem.state.dtype)
        collocation_state = restore(
            checkpoint, "collocation_state", like, "`collocation`'s state"
        )
    key = restore(checkpoint, "key", _key_template(checkpoint), "the key")
    return FitResult(
        model=model,
        problem=problem,
        args=resolve_args(args),
        history=read_history(checkpoint),
        stop_reason=checkpoint.stop_reason,
        steps=checkpoint.steps,
        opt_state=opt_state,
        collocation_state=collocation_state,
        key=key,
        wall_time=float("nan"),
        compile_time=float("nan"),
    )
