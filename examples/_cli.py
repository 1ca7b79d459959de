"""The command line shared by odefit's example scripts.

Every example defines `main(**hyperparameters)` whose defaults are the real run, and
a dictionary `SMOKE` of overrides for a run of a few seconds (used by CI). Run an
example as `python examples/NAME.py` (the real run) or with `--smoke`; setting
`ODEFIT_SMOKE=1` in the environment does the same as `--smoke`.
"""

import argparse
import os
import sys
import time
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent / "output"


def run(main, smoke: dict) -> dict:
    parser = argparse.ArgumentParser(
        description=(sys.modules[main.__module__].__doc__ or "").strip()
    )
    parser.add_argument(
        "--smoke", action="store_true", help="a run of a few seconds, for CI"
    )
    args = parser.parse_args()
    kwargs = smoke if args.smoke or os.environ.get("ODEFIT_SMOKE") else {}
    return main(**kwargs)


class Timer:
    """Wall time since construction (compilation included)."""

    def __init__(self):
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start


def report(name: str, rows: dict[str, float | str]) -> None:
    """Prints the example's results as aligned `name: value` lines."""
    print(f"== {name} ==")
    width = max(len(k) for k in rows)
    for key, value in rows.items():
        shown = f"{value:.3e}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}} : {shown}")
