"""What every result file in benchmarks/results/ records besides its figures: the
command that produced it, the date, the machine and its load, the repeats and the
versions of everything that ran (STYLE.md rule 24)."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # not available on this platform
        return None


def metadata(command: str, repeats: int) -> dict:
    """The metadata block of a result file, taken when the run starts."""
    from importlib.metadata import PackageNotFoundError, version

    import jax

    versions = {"python": platform.python_version(), "jax": jax.__version__}
    for name in ("jaxlib", "equinox", "optax", "diffrax", "odefit"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            pass
    if "torch" in sys.modules:
        versions["torch"] = sys.modules["torch"].__version__
    try:
        versions["odefit_commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "machine": {
            "cpu": platform.machine(),
            "cores": os.cpu_count(),
            "devices": [str(d) for d in jax.devices()],
        },
        "load_average_start": load_average(),
        "repeats": repeats,
        "versions": versions,
    }


def complete(out: dict, command: str, repeats: int) -> dict:
    """`out` with every metadata field it does not already record (a result file
    keeps its own names for what it has, e.g. `machine.load_start`)."""
    for key, value in metadata(command, repeats).items():
        out.setdefault(key, value)
    return out
