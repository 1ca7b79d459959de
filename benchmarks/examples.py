"""Runs example scripts at their real settings, each in its own process, and records
what they print and return in `results/examples.json`: the figures of the README's
example tables come from that file.

    python benchmarks/examples.py [NAME ...] [--smoke]

Each example's `main()` returns its headline numbers (errors, wall time) and
prints its report as `name : value` lines; both are recorded. Wall times include
compilation and depend on the load of the machine, which the file records.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _meta import load_average, metadata  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT = (
    "oscillator",
    "exponential_decay",
    "logistic",
    "pendulum",
    "bvp",
    "inverse_lotka_volterra",
    "neural_ode",
)

# Runs one example's main() (real settings unless --smoke) without progress bars
# and prints what it returned as one JSON line after a marker.
_RUNNER = """
import importlib, inspect, json, sys
sys.path.insert(0, "examples")
module = importlib.import_module(sys.argv[1])
kwargs = dict(module.SMOKE) if sys.argv[2] == "smoke" else {}
parameters = inspect.signature(module.main).parameters
kwargs.update({k: False for k in ("progress", "plot") if k in parameters})
out = module.main(**kwargs)
def plain(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        pass
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    try:
        return [plain(v) for v in x]
    except TypeError:
        return str(x)
print("@@returned " + json.dumps(plain(out)))
"""


def parse_report(stdout: str) -> dict[str, dict[str, str]]:
    """The `== title ==` blocks of `name : value` lines an example prints."""
    blocks: dict[str, dict[str, str]] = {}
    current = None
    for line in stdout.splitlines():
        if line.startswith("== ") and line.endswith(" =="):
            current = blocks.setdefault(line[3:-3], {})
        elif current is not None and " : " in line:
            key, value = line.split(" : ", 1)
            current[key.strip()] = value.strip()
    return blocks


def run_example(name: str, mode: str) -> dict:
    tic = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER, name, mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - tic
    if proc.returncode != 0:
        raise RuntimeError(f"examples/{name}.py failed:\n{proc.stderr[-3000:]}")
    returned = None
    for line in proc.stdout.splitlines():
        if line.startswith("@@returned "):
            returned = json.loads(line[len("@@returned ") :])
    return {
        "returned": returned,
        "printed": parse_report(proc.stdout),
        "process_wall_s": wall,
    }


def main(names: list[str], smoke: bool) -> dict:
    import jax  # noqa: F401  (for the versions in the metadata)

    command = "python benchmarks/examples.py" + (" --smoke" if smoke else "")
    if list(names) != list(DEFAULT):
        command += " " + " ".join(names)
    out = metadata(command, repeats=1)
    out["mode"] = "smoke" if smoke else "real (each example's default settings)"
    out["dtype"] = "float32 unless the example enables float64"
    path = RESULTS / ("examples_smoke.json" if smoke else "examples.json")
    previous = json.loads(path.read_text()) if path.is_file() else {}
    out["examples"] = dict(previous.get("examples", {}))
    for name in names:
        print(f"running examples/{name}.py ...", flush=True)
        out["examples"][name] = run_example(name, "smoke" if smoke else "real")
        out["examples"][name]["load_average_after"] = load_average()
        print(json.dumps(out["examples"][name]["returned"]), flush=True)
    out["load_average_end"] = load_average()
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(DEFAULT))
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    main(args.names, args.smoke)
