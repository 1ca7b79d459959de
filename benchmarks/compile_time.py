"""How long each example spends compiling, at its real sizes.

Runs every script in `examples/` in its own process with its default (real-run)
hyperparameters except the step counts, which come from the script's `SMOKE`
settings (compilation does not depend on how many steps run), and adds up JAX's
own compilation events (`jax.monitoring`): tracing, lowering to MLIR and XLA's
backend compile. Reported: the compile seconds inside the first call of
`odefit.fit` or `odefit.fit_ensemble` (also when `fit_stages` or `fit_marching`
make it),
the most inside any one call, and everything the script compiled (its fits,
reference solves and evaluations).

    python benchmarks/compile_time.py [--json results/compile_time.json]
    python benchmarks/compile_time.py --only oscillator,pendulum
"""

import argparse
import json
import math
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

# Every `odefit.fit` and `odefit.fit_ensemble` call, including those made by
# fit_stages, fit_marching, ...: the seconds spent compiling during the call.
import odefit, odefit._fit, odefit._ensemble
calls = []

def timed(original):
    def wrapper(*args, **kwargs):
        before = totals["trace"] + totals["lower"] + totals["compile"]
        tic = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            after = totals["trace"] + totals["lower"] + totals["compile"]
            calls.append((after - before, time.perf_counter() - tic))
    return wrapper

for name, original in (
    ("fit", odefit._fit.fit), ("fit_ensemble", odefit._ensemble.fit_ensemble)
):
    for mod in list(sys.modules.values()):
        if (getattr(mod, "__name__", "") or "").startswith("odefit") and getattr(
            mod, name, None
        ) is original:
            setattr(mod, name, timed(original))
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
totals["fit_calls"] = calls
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
        calls = r["fit_calls"] or [(math.nan, math.nan)]
        r["first_fit"], r["slowest_fit"] = calls[0][0], max(c for c, _ in calls)
        print(
            f"{name}: first fit call {r['first_fit']:.1f} s compiling (of "
            f"{calls[0][1]:.1f} s), the most in one call {r['slowest_fit']:.1f} s "
            f"({len(r['fit_calls'])} calls); script {r['total']:.1f} s compiling "
            f"({r['count']} programs) of {r['wall']:.1f} s; process "
            f"{time.perf_counter() - tic:.1f} s",
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
    print(
        "| example | first `fit` call [s] | most in one call [s] | `fit` calls | "
        "whole script [s] (programs) | bar: first call ≤ 10 s |"
    )
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['first_fit']:.1f} | {r['slowest_fit']:.1f} | "
            f"{len(r['fit_calls'])} | {r['total']:.1f} ({r['count']}) | "
            f"{'✓' if r['first_fit'] <= 10 else '✗'} |"
        )
    if args.json:
        from _meta import complete  # benchmarks/_meta.py, beside this script

        meta = complete(meta, meta["command"], repeats=1)
        path = Path(args.json)
        if args.only and path.exists():  # update these examples, keep the others
            previous = json.loads(path.read_text())
            previous["results"].update(results)
            previous.setdefault("reruns", []).append({**meta, "examples": names})
            path.write_text(json.dumps(previous, indent=1))
        else:
            path.write_text(json.dumps({**meta, "results": results}, indent=1))


if __name__ == "__main__":
    main()
