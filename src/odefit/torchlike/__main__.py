"""`python -m odefit.torchlike`: odefit's `grad`/`backward` side by side with
PyTorch's `autograd.grad`/`backward()` on the same inputs and weights, in float64.

Prints one row per compared quantity: PyTorch's value, odefit's value and the
largest absolute difference; then what threaded training on shared weights loses
or keeps (PyTorch's Hogwild against the JAX ways). Exits with status 1 if any
difference exceeds the tolerance, or if a JAX way that must be exact is not.
Without PyTorch installed it says how to install it and prints odefit's side
alone.

    python -m odefit.torchlike [--json PATH]

`--json PATH` also writes every difference and observation, with the command, the
date, the machine's load and the versions, to PATH (the docs and README figures
of the cross-check come from `benchmarks/results/torchlike.json`, written so).
"""

import argparse
import datetime
import json
import os
import platform
import sys


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m odefit.torchlike",
        description="odefit.torchlike side by side with PyTorch, float64 on CPU.",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results here")
    options = parser.parse_args(argv)

    import jax

    # A script, not a library import: float64 is what makes the comparison exact.
    jax.config.update("jax_enable_x64", True)

    from ._crosscheck import (
        INSTALL_HINT,
        TOLERANCE,
        format_table,
        run_cases,
        torch_available as _torch_available,
    )
    from ._threads import format_observations, observations

    started = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat()[:10]}
    started["load_average_start"] = _load()
    with_torch = _torch_available()
    versions = {"python": platform.python_version(), "jax": jax.__version__}
    if with_torch:
        import torch

        versions["torch"] = torch.__version__
    shown = ", ".join(f"{k} {v}" for k, v in versions.items() if k != "python")
    print(
        "odefit.torchlike vs PyTorch, float64 on CPU "
        f"({shown}, Python {versions['python']})"
    )
    if not with_torch:
        print(
            f"PyTorch is not installed, so only odefit's side is shown. To compare, "
            f"install it with:\n    {INSTALL_HINT}"
        )
    print()
    rows = run_cases(with_torch)
    print(format_table(rows))
    print()
    threads = observations(with_torch)
    print(format_observations(threads))
    print()
    not_exact = [o for o in threads if o.exact and o.value != 0]
    status = 0
    if not_exact:
        print(f"Not exact, but must be: {', '.join(o.name for o in not_exact)}.")
        status = 1
    if with_torch:
        worst = max(r.difference for r in rows)
        failed = [r for r in rows if not r.difference <= TOLERANCE]
        if failed:
            print(
                f"{len(failed)} of {len(rows)} quantities differ by more than "
                f"{TOLERANCE:g}."
            )
            status = 1
        else:
            print(
                f"All {len(rows)} quantities agree within {TOLERANCE:g} "
                f"(largest difference {worst:.1e})."
            )
    if options.json:
        _write(options.json, started, versions, rows, threads, TOLERANCE)
    return status


def _write(path, started, versions, rows, threads, tolerance) -> None:
    out = {
        "command": "python -m odefit.torchlike --json " + path,
        **started,
        "load_average_end": _load(),
        "machine": {"cpu": platform.machine(), "cores": os.cpu_count()},
        "repeats": 1,
        "versions": versions,
        "dtype": "float64",
        "tolerance": tolerance,
        "rows": [
            {
                "case": r.case,
                "quantity": r.quantity,
                "size": None if r.odefit is None else int(r.odefit.size),
                "difference": r.difference,
            }
            for r in rows
        ],
        "threads": [o._asdict() for o in threads],
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
