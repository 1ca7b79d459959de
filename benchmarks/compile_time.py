"""How long each example spends compiling, at its real sizes.

Runs every script in `examples/` in its own process with its default (real-run)
hyperparameters except the step counts, which come from the script's `SMOKE`
settings (compilation does not depend on how many steps run), and adds up JAX's
own compilation events (`jax.monitoring`): tracing, lowering to MLIR and XLA's
backend compile. Everything the script compiles is counted — its fits, reference
solves and evaluations — so the figure bounds the compile time of its first
`fit` call from above.

    python benchmarks/compile_time.py [--json results/compile_time.json]
    python benchmarks/compile_time.py --only oscillator,pendulum
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"
EVENTS = {
    "/jax/core/compile/jaxpr_trace_duration": "trace",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
    "/jax/core/compile/backend_compile_duration": "compile",
}
# Hyperparameters that only set how long a run is.
LENGTH_KEYS = ("steps", "adam_steps", "lm_steps", "lbfgs_steps", "stages")

_CHILD = """
import importlib, json, sys, time
import jax
sys.path.insert(0, {examples!r})
totals = {{"trace": 0.0, "lower": 0.0, "compile": 0.0, "count": 0}}
names = {events!r}

def listen(event, seconds, **_):
    if event in names:
        totals[names[event]] += seconds
        totals["count"] += event.endswith("backend_compile_duration")

jax.monitoring.register_event_duration_secs_listener(listen)
module = importlib.import_module({name!r})
kwargs = {{k: v for k, v in module.SMOKE.items() if k in {keys!r}}}
kwargs["progress"] = False
import inspect
if "progress" not in inspect.signature(module.main).parameters:
    kwargs.pop("progress")
tic = time.perf_counter()
module.main(**kwargs)
totals["wall"] = time.perf_counter() - tic
totals["overrides"] = kwargs
print("RESULT " + json.dumps(totals))
"""


def measure(name: str) -> dict:
    code = _CHILD.format(
        examples=str(EXAMPLES), events=EVENTS, name=name, keys=LENGTH_KEYS
    )
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            out = json.loads(line[len("RESULT ") :])
            out["total"] = out["trace"] + out["lower"] + out["compile"]
            return out
    raise RuntimeError(f"{name} failed:\n{proc.stderr[-2000:]}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated example names")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    names = sorted(p.stem for p in EXAMPLES.glob("*.py") if not p.stem.startswith("_"))
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    load = os.getloadavg()
    results = {}
    for name in names:
        tic = time.perf_counter()
        results[name] = measure(name)
        r = results[name]
        print(
            f"{name}: {r['total']:.1f} s compiling ({r['count']} programs; trace "
            f"{r['trace']:.1f}, lower {r['lower']:.1f}, XLA {r['compile']:.1f}) "
            f"of {r['wall']:.1f} s; process {time.perf_counter() - tic:.1f} s",
            flush=True,
        )
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_start": load,
        "load_end": os.getloadavg(),
        "command": "python benchmarks/compile_time.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    print()
    print("| example | compiling [s] | programs | trace / lower / XLA [s] | bar |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['total']:.1f} | {r['count']} | {r['trace']:.1f} / "
            f"{r['lower']:.1f} / {r['compile']:.1f} | "
            f"{'≤ 10 s ✓' if r['total'] <= 10 else '> 10 s ✗'} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({**meta, "results": results}, indent=1))


if __name__ == "__main__":
    main()
