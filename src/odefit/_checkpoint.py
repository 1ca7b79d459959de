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

import contextlib
import errno
import hashlib
import io
import json
import math
import os
import stat
import struct
import tempfile
from collections.abc import Iterator, Mapping
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
from ._memory import format_bytes, physical_memory
from ._models.base import AbstractModel
from ._objective import make_objective, split
from ._problems import AbstractProblem
from ._result import RUNNING as RUNNING, FitResult
from ._trainers import as_trainer
from ._unknown import Unknown, resolve_args

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


# --- what a checkpoint was made for ------------------------------------------------
#
# A checkpoint records the identity of the fit that wrote it, and `resume`/`load`
# refuse any other: every array and number of the problem (`y0`, `t0`, the arrays
# of `args`, ...) and of the model's fixed (non-trained) part (a PINN's `scale`,
# its built-in initial value), by checksum and a few summary numbers; `Unknown`
# entries of `args` (trained, so their values legitimately change) by path,
# shape, dtype and constraint only; and the vector field by its values at a few
# fixed times and states (with the `Unknown`s set to one), the closest one can
# get to a function's identity.

_SUMMARY_SIZE = 8
_PROBE_FRACTIONS = (0.25, 0.5, 0.75)


def _summary(x: np.ndarray) -> list[float]:
    """A few numbers that identify an array up to rounding: the values of a small
    array, otherwise sums, extremes and fixed projections."""
    v = np.asarray(x)
    if np.iscomplexobj(v):
        v = np.concatenate([v.real.ravel(), v.imag.ravel()])
    v = v.astype(np.float64).ravel()
    if v.size <= _SUMMARY_SIZE:
        return v.tolist()
    k = np.arange(v.size, dtype=np.float64)
    out = [v.sum(), np.abs(v).sum(), v.max(), v.min()]
    for j in range(_SUMMARY_SIZE - 4):
        out.append(float(np.dot(v, np.cos((j + 1) * 0.6180339887 * k + j))))
    return [float(x) for x in out]


def _is_scalar_value(x) -> bool:
    return isinstance(x, (bool, int, float, complex, str)) and not isinstance(
        x, np.generic
    )


def _identify(tree: PyTree, prefix: str) -> list[dict]:
    """One entry per leaf of `tree` (an `Unknown` counts as one leaf)."""
    entries = []
    is_unknown = lambda x: isinstance(x, Unknown)  # noqa: E731
    leaves, _ = jtu.tree_flatten_with_path(tree, is_leaf=is_unknown)
    for path, x in leaves:
        name = prefix + jtu.keystr(path)
        if isinstance(x, Unknown):
            entries.append(
                {
                    "path": name,
                    "unknown": True,
                    "shape": list(np.shape(x.raw)),
                    "dtype": _leaf_dtype(x.raw),
                    "positive": bool(x.positive),
                }
            )
        elif isinstance(x, (jax.Array, np.ndarray, np.generic)) and (
            _is_key(x) or np.dtype(x.dtype).kind in "biufc"
        ):
            array = _to_numpy(x)
            entries.append(
                {
                    "path": name,
                    "shape": list(array.shape),
                    "dtype": _leaf_dtype(x),
                    "sha256": _sha256(np.ascontiguousarray(array).tobytes()),
                    "values": _summary(array),
                }
            )
        elif _is_scalar_value(x):
            entries.append(
                {
                    "path": name,
                    "value": x if not isinstance(x, complex) else [x.real, x.imag],
                }
            )
        else:
            # Functions, non-numeric arrays and other objects: only their kind
            # can be compared.
            entries.append({"path": name, "kind": type(x).__name__})
    return entries


def _probe_args(args: PyTree) -> PyTree:
    """`args` with every `Unknown` replaced by ones of its shape: values that do
    not depend on how far training has moved them."""
    return jtu.tree_map(
        lambda x: jnp.ones_like(x.value) if isinstance(x, Unknown) else x,
        args,
        is_leaf=lambda x: isinstance(x, Unknown),
    )


def _probe_field(problem: AbstractProblem) -> list:
    """The first-order vector field of `problem` at a few fixed times and states
    near its initial (or boundary) state, summarised; an evaluation that raises
    is recorded by the exception's type."""
    base = np.asarray(problem.state)
    dtype = base.dtype
    field = problem.first_order_field()
    args = _probe_args(problem.args)
    span = problem.t1 - problem.t0
    size = 1.0 + np.abs(base)
    index = np.arange(base.size, dtype=np.float64).reshape(base.shape)
    probes = []
    for k, fraction in enumerate(_PROBE_FRACTIONS, start=1):
        t = jnp.asarray(problem.t0 + fraction * span, dtype)
        y = jnp.asarray(base + 0.25 * k * size * np.cos(index + k), dtype)
        dy = jnp.asarray(0.5 * size * np.sin(index + k), dtype)
        state = y if problem.order == 1 else (y, dy)
        try:
            out = field(t, state, args)
            leaves = [np.asarray(leaf) for leaf in jtu.tree_leaves(out)]
            flat = np.concatenate([leaf.ravel() for leaf in leaves])
            probes.append(_summary(flat))
        except Exception as e:  # noqa: BLE001
            probes.append(f"raised {type(e).__name__}")
    return probes


def problem_metadata(problem: AbstractProblem, model: AbstractModel) -> dict:
    """What a checkpoint records about the fit it belongs to: the kinds, interval
    and state of the problem and model, and `identity` (see above)."""
    state = problem.state
    _, fixed = eqx.partition(model, model.trainable())
    return {
        "problem": type(problem).__name__,
        "t0": float(problem.t0),
        "t1": float(problem.t1),
        "state_shape": list(state.shape),
        "state_dtype": str(state.dtype),
        "model": type(model).__name__,
        "identity": {
            "problem": _identify(problem, "problem"),
            "model": _identify(fixed, "model"),
            "field": _probe_field(problem),
        },
    }


def check_path(path: str | os.PathLike, name: str = "checkpoint_path") -> str:
    """Checks, before a fit starts, that checkpoints can be written to `path`:
    its folder exists and is writable (a file is created there and removed), and
    `path`, if it exists, is a regular file — not a directory, a FIFO (reading it
    would block forever) or a device. Returns `path` as a `str`.

    Raises `TypeError` for a `path` that is not a str or os.PathLike and
    `ValueError`, naming `name`, for everything else.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"`{name}` must be a str or os.PathLike, got {type(path).__name__}."
        )
    path = os.fspath(path)
    if not isinstance(path, str):
        raise TypeError(f"`{name}` must be a str path, got bytes {path!r}.")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValueError(
            f"`{name}` is {path!r}, but its folder {directory!r} does not exist"
            + ("" if not os.path.exists(directory) else " as a folder")
            + "; create it first (os.makedirs) or choose another path."
        )
    if os.path.lexists(path):
        try:
            mode = os.stat(path).st_mode
        except OSError as e:
            raise ValueError(
                f"`{name}` is {path!r}, which cannot be read ({e.strerror}); a "
                "broken symbolic link? Choose another path."
            ) from e
        if stat.S_ISDIR(mode):
            raise ValueError(
                f"`{name}` is {path!r}, a directory; pass a file path inside it, "
                f"e.g. {os.path.join(path, 'fit.ckpt')!r}."
            )
        if not stat.S_ISREG(mode):
            raise ValueError(
                f"`{name}` is {path!r}, {_kind(mode)}, not a regular file: "
                "checkpoints are written to a new file and renamed over it. Choose "
                "the path of an ordinary file."
            )
    try:
        fd, probe = tempfile.mkstemp(prefix=".odefit-probe.", dir=directory)
    except OSError as e:
        raise ValueError(
            f"`{name}` is {path!r}, but its folder {directory!r} is not writable "
            f"({e.strerror}); no checkpoint could be saved. Choose a writable folder."
        ) from e
    os.close(fd)
    os.unlink(probe)
    return path


def _lock_holder(lock_path: str) -> str:
    try:
        with open(lock_path, encoding="ascii", errors="replace") as f:
            text = f.read(32).strip()
    except OSError:
        return "another process"
    return f"process {text}" if text.isdigit() else "another process"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def lock(path: str | os.PathLike) -> Iterator[str]:
    """Holds the lock of checkpoint `path` (the file `path + ".lock"`, holding
    the owner's process id) for the duration of the `with` block, so that two
    fits never write one checkpoint in turn: a second `lock` of the same path,
    from another process or this one, raises `ValueError` naming the holder.

    Uses `fcntl.flock` where available (released by the system when the holder
    dies, however it dies); elsewhere an exclusively created lock file whose
    process id, if dead, marks it stale. Yields the lock file's path.
    """
    path = os.fspath(path)
    lock_path = path + ".lock"

    def busy() -> ValueError:
        return ValueError(
            f"Checkpoint {path!r} is in use by {_lock_holder(lock_path)}, which "
            f"holds {lock_path!r}: two fits on one `checkpoint_path` would "
            "overwrite each other's checkpoints. Wait for it to finish, or pass "
            "another `checkpoint_path`."
        )

    try:
        import fcntl
    except ImportError:  # pragma: no cover (not POSIX)
        fcntl = None
    if fcntl is not None:
        while True:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise busy() from None
                raise
            # The previous holder may have removed the file between our open and
            # our lock: then we hold a lock on a file nobody else will open.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(lock_path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode("ascii"))
            yield lock_path
        finally:
            try:
                os.unlink(lock_path)
            except OSError:
                pass
            os.close(fd)  # releases the lock
        return
    while True:  # pragma: no cover (not POSIX)
        try:
            fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            break
        except FileExistsError:
            holder = _lock_holder(lock_path)
            pid = holder.removeprefix("process ")
            if pid.isdigit() and not _pid_alive(int(pid)):
                os.unlink(lock_path)  # stale: its owner is dead
                continue
            raise busy() from None
    try:  # pragma: no cover (not POSIX)
        os.write(fd, str(os.getpid()).encode("ascii"))
        os.close(fd)
        yield lock_path
    finally:  # pragma: no cover (not POSIX)
        try:
            os.unlink(lock_path)
        except OSError:
            pass


def _atomic_write(path: str, data: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory
        )
    except FileNotFoundError as e:
        # Still an OSError (a fit warns and goes on), but about the folder, not
        # the temporary file's name.
        raise FileNotFoundError(
            e.errno,
            f"cannot write checkpoint {path!r}: its folder {directory!r} does not "
            "exist",
        ) from None
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
    if not _is_count(steps) and not (isinstance(steps, np.integer) and steps >= 0):
        raise ValueError(f"`steps` must be an integer >= 0, got {steps!r}.")
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


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _open_regular(path: str) -> int:
    """A file descriptor of `path` opened for reading, which must be a regular
    file: opening a FIFO would block until a writer appears, and a device such
    as /dev/zero never ends. `O_NONBLOCK` makes the open itself return at once."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ValueError(
                f"Checkpoint {path!r} is {_kind(mode)}, not a regular file; a "
                "checkpoint is an ordinary file written by odefit.save or fit."
            )
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_exactly(f, size: int) -> bytes:
    data = f.read(size)
    return data if data is not None else b""


def _is_count(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _check_header(path: str, header: dict) -> None:
    """The fields a hand-edited (or foreign) header could get wrong, checked
    before any is used."""
    if not isinstance(header, dict):
        raise _corrupt(path, "its header is malformed (not a JSON object)")
    steps = header.get("steps")
    if not _is_count(steps):
        raise _corrupt(
            path, f"its header is malformed (steps {steps!r} is not an integer >= 0)"
        )
    if not isinstance(header.get("stop_reason"), str):
        raise _corrupt(path, "its header is malformed (no stop reason)")
    if not isinstance(header.get("metadata"), dict):
        raise _corrupt(path, "its header is malformed (no metadata)")
    payload_size = header["payload_size"]
    if not _is_count(payload_size):
        raise _corrupt(path, f"its header is malformed (payload size {payload_size!r})")
    sections = header.get("sections")
    history = header.get("history")
    if not isinstance(sections, dict) or not isinstance(history, list):
        raise _corrupt(path, "its header is malformed (no section index)")
    entries = [(name, sections.get(name)) for name in SECTIONS]
    entries += [(f"history entry {i}", e) for i, e in enumerate(history)]
    for name, entry in entries:
        if not (
            isinstance(entry, dict)
            and _is_count(entry.get("offset"))
            and _is_count(entry.get("size"))
            and entry["offset"] + entry["size"] <= payload_size
        ):
            raise _corrupt(path, f"its header is malformed ({name} is out of range)")
    for name in SECTIONS:
        if not isinstance(sections[name].get("leaves"), list):
            raise _corrupt(path, f"its header is malformed ({name} lists no arrays)")
    for entry in history:
        if not isinstance(entry.get("name"), str):
            raise _corrupt(
                path, "its header is malformed (a history entry has no name)"
            )


def read(path: str | os.PathLike) -> Checkpoint:
    """Reads a checkpoint and verifies its magic, version, sizes and checksums.

    Raises `ValueError` naming what is wrong (not a regular file, not a
    checkpoint, truncated, corrupted, larger than memory, written by a newer
    version) and `FileNotFoundError` when `path` does not exist. Sizes are checked
    against the file's size before anything large is read.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"`path` must be a str or os.PathLike, got {type(path).__name__}."
        )
    path = os.fspath(path)
    with os.fdopen(_open_regular(path), "rb") as f:
        size = os.fstat(f.fileno()).st_size
        limit = physical_memory()
        if limit is not None and size > limit:
            raise ValueError(
                f"Checkpoint {path!r} is {format_bytes(size)}, more than this "
                f"machine's memory ({format_bytes(limit)}); it cannot be loaded here."
            )
        prefix = _read_exactly(f, len(MAGIC) + _U64.size)
        if len(prefix) < len(MAGIC) or prefix[: len(MAGIC)] != MAGIC:
            if MAGIC.startswith(prefix):
                raise _corrupt(path, f"it is truncated ({size} bytes)")
            raise _corrupt(path, "it is not an odefit checkpoint (wrong magic bytes)")
        start = len(MAGIC) + _U64.size
        if len(prefix) < start:
            raise _corrupt(path, f"it is truncated ({size} bytes)")
        (header_size,) = _U64.unpack(prefix[len(MAGIC) : start])
        end = start + header_size + _DIGEST
        if size < end:
            raise _corrupt(
                path, f"it is truncated ({size} bytes, the header alone needs {end})"
            )
        header_bytes = _read_exactly(f, header_size)
        digest = _read_exactly(f, _DIGEST)
        if len(header_bytes) != header_size or len(digest) != _DIGEST:
            raise _corrupt(path, "it changed while being read")
        if hashlib.sha256(header_bytes).digest() != digest:
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
        _check_header(path, header)
        if size - end < payload_size:
            raise _corrupt(
                path, f"it is truncated ({size} bytes, expected {end + payload_size})"
            )
        if size - end > payload_size:
            raise _corrupt(
                path, f"it has {size - end - payload_size} unexpected trailing bytes"
            )
        payload = _read_exactly(f, payload_size)
        if len(payload) != payload_size or f.read(1):
            raise _corrupt(path, "it changed while being read")
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


_AFRESH = (
    "To start afresh, pass `resume=False` (the file is overwritten) or another "
    "`checkpoint_path`; to load it, build the problem and model exactly as in the "
    "run that wrote it."
)


def _different(checkpoint: Checkpoint, detail: str) -> ValueError:
    return ValueError(
        f"Checkpoint {checkpoint.path!r} was written for a different problem or "
        f"model: {detail}. {_AFRESH}"
    )


def _close(saved, current, rtol: float) -> bool:
    """Whether two summaries agree up to rounding (a checkpoint may be resumed on
    another device, whose arithmetic differs in the last bits)."""
    if len(saved) != len(current):
        return False
    a = np.asarray(saved, dtype=np.float64)
    b = np.asarray(current, dtype=np.float64)
    finite = np.isfinite(a) & np.isfinite(b)
    if not np.array_equal(np.isnan(a), np.isnan(b)) or not np.array_equal(
        a[~finite & ~np.isnan(a)], b[~finite & ~np.isnan(b)]
    ):
        return False
    # Relative to the larger summary, so that small arrays are compared as
    # strictly as large ones.
    scale = float(np.max(np.abs(np.concatenate([a[finite], b[finite]])), initial=0.0))
    return bool(np.all(np.abs(a[finite] - b[finite]) <= rtol * scale))


def _rtol(dtype: str, computed: bool) -> float:
    try:
        eps = float(np.finfo(np.dtype(dtype)).eps)
    except (TypeError, ValueError):
        return 0.0
    # Stored arrays may differ by rounding (computed on another device, e.g. a
    # PINN's `scale`); evaluations of the vector field by more.
    return math.sqrt(eps) if computed else 256 * eps


def _show(entry: Mapping) -> str:
    if entry.get("unknown"):
        return (
            f"an Unknown of shape {tuple(entry['shape'])} and dtype "
            f"{entry['dtype']}" + (" (positive)" if entry["positive"] else "")
        )
    if "value" in entry:
        return repr(entry["value"])
    if "kind" in entry:
        return f"a {entry['kind']}"
    shape = tuple(entry["shape"])
    if shape == ():
        return f"{entry['values'][0]!r} ({entry['dtype']})"
    if int(np.prod(shape)) <= _SUMMARY_SIZE:
        values = np.asarray(entry["values"]).reshape(shape)
        return f"{np.array2string(values, precision=8)} ({entry['dtype']})"
    return f"an array of shape {shape} and dtype {entry['dtype']}"


def _same_entry(saved: Mapping, current: Mapping) -> bool:
    if saved.get("unknown") or current.get("unknown"):
        return _as_json(saved) == _as_json(current)
    if "sha256" in saved and "sha256" in current:
        if [saved["shape"], saved["dtype"]] != [current["shape"], current["dtype"]]:
            return False
        return saved["sha256"] == current["sha256"] or _close(
            saved["values"], current["values"], _rtol(saved["dtype"], False)
        )
    # As JSON text, so that a NaN equals the NaN read back from the file.
    return _as_json(saved) == _as_json(current)


def _as_json(entry: Mapping) -> str:
    return json.dumps(entry, sort_keys=True)


def _compare_entries(
    checkpoint: Checkpoint, saved: list, current: list, what: str
) -> None:
    saved_by_path = {e["path"]: e for e in saved}
    current_by_path = {e["path"]: e for e in current}
    for path, entry in current_by_path.items():
        if path not in saved_by_path:
            raise _different(
                checkpoint,
                f"this fit's {what} has {path} ({_show(entry)}) where the "
                f"checkpoint's has nothing",
            )
        old = saved_by_path[path]
        if not _same_entry(old, entry):
            raise _different(
                checkpoint,
                f"its {path} is {_show(old)} but this fit's is {_show(entry)}",
            )
    for path, entry in saved_by_path.items():
        if path not in current_by_path:
            raise _different(
                checkpoint,
                f"its {what} has {path} ({_show(entry)}) where this fit's has nothing",
            )


def check_metadata(
    checkpoint: Checkpoint, problem: AbstractProblem, model: AbstractModel
) -> None:
    """Raises `ValueError` saying what differs when `checkpoint` was written for
    another problem or model than `problem` and `model` (see `problem_metadata`);
    `Unknown` entries of `args` are compared by structure, not value."""
    saved = checkpoint.header["metadata"]
    current = problem_metadata(problem, model)
    identity = current.pop("identity")
    for field, value in current.items():
        if saved.get(field) != value:
            raise _different(
                checkpoint,
                f"its {field} is {saved.get(field)!r} but this fit's is {value!r}",
            )
    saved_identity = saved.get("identity")
    if not isinstance(saved_identity, Mapping) or not all(
        isinstance(saved_identity.get(k), list) for k in ("problem", "model", "field")
    ):
        raise _different(
            checkpoint,
            "it does not record which problem it was made for (it was written by "
            "an earlier version of odefit), so it cannot be verified",
        )
    try:
        _compare_identity(checkpoint, saved_identity, identity, current)
    except (KeyError, TypeError, AttributeError) as e:
        raise _corrupt(checkpoint.path, f"its metadata is malformed ({e!r})") from e


def _compare_identity(checkpoint, saved_identity, identity, current) -> None:
    _compare_entries(
        checkpoint, saved_identity["problem"], identity["problem"], "problem"
    )
    _compare_entries(
        checkpoint,
        saved_identity["model"],
        identity["model"],
        "model's fixed (non-trained) part",
    )
    rtol = _rtol(current["state_dtype"], True)
    for fraction, old, new in zip(
        _PROBE_FRACTIONS, saved_identity["field"], identity["field"], strict=False
    ):
        same = (
            old == new
            if isinstance(old, str) or isinstance(new, str)
            else _close(old, new, rtol)
        )
        if not same:
            t = current["t0"] + fraction * (current["t1"] - current["t0"])
            raise _different(
                checkpoint,
                "its vector field gives other values than this fit's at the same "
                f"test time t={t:g} and state (a different equation or parameters)",
            )
    if len(saved_identity["field"]) != len(identity["field"]):
        raise _different(checkpoint, "its vector field was probed differently")


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
    check_path(path, "path")
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

    Raises `ValueError` for a path that is not a regular file (a FIFO, a device),
    for a truncated, corrupted or foreign file, and for one written for a
    different problem or model, naming the first difference: an array or number
    of the problem (`y0`, `t0`, an array of `args`), the model's fixed
    (non-trained) parts, the vector field's values at fixed test points, or the
    shapes of the model's weights. `Unknown` entries of `args` are compared by
    structure (their values are what training changes).

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
