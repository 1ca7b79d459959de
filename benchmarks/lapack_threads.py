"""Does a least-squares fit need `OMP_NUM_THREADS=1`? Not any more.

Levenberg-Marquardt steps call LAPACK inside the compiled step; JAX's CPU LAPACK
is OpenBLAS, whose worker threads spin against XLA's own. odefit's training core
limits OpenBLAS to one thread while a chunk runs (threadpoolctl). This script
times 100 Levenberg-Marquardt steps (a damped oscillator as a 2-state system, a
50x3 network, 128 points, float64) three ways, each in a fresh process, in turn:

- `odefit`: a plain `python script.py` (the limit odefit sets);
- `OMP_NUM_THREADS=1`: the environment variable as well;
- `unlimited`: odefit's limit switched off (what odefit did before).

    python benchmarks/lapack_threads.py [--repeats 3]
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import numpy as np

CHILD = r"""
import contextlib, sys, time, jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp, jax.random as jr, odefit, odefit._loop
if sys.argv[1] == "unlimited":
    odefit._loop.threadpool_limits = lambda **kwargs: contextlib.nullcontext()
def f(t, y, args):
    return jnp.stack([y[1], -y[0] - 0.1 * y[1]])
p = odefit.IVP(f, 0.0, 5.0, jnp.array([1.0, 0.0]))
m = odefit.PINN(p, width=50, depth=3, key=jr.key(0))
kw = dict(optimizer=odefit.LevenbergMarquardt(points=128), key=jr.key(1),
          progress=False, chunk_size=20)
odefit.fit(p, m, steps=20, **kw)  # compiles
tic = time.perf_counter()
r = odefit.fit(p, m, steps=100, **kw)
print(time.perf_counter() - tic, float(r.history["loss"][-1]))
"""


def run(mode: str) -> tuple[float, float]:
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    if mode == "OMP_NUM_THREADS=1":
        env["OMP_NUM_THREADS"] = "1"
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), float(out[1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    modes = ("odefit", "OMP_NUM_THREADS=1", "unlimited")
    times = {m: [] for m in modes}
    losses = {m: [] for m in modes}
    loads = [os.getloadavg()[0]]
    for _ in range(args.repeats):
        for mode in modes:
            seconds, loss = run(mode)
            times[mode].append(seconds)
            losses[mode].append(loss)
            loads.append(os.getloadavg()[0])
            print(mode, f"{seconds:.2f} s", flush=True)
    # The same fit whatever the threads: the final losses agree.
    all_losses = np.concatenate([losses[m] for m in modes])
    assert np.allclose(all_losses, all_losses[0], rtol=1e-6), losses
    median = {m: float(np.median(times[m])) for m in modes}
    out = {
        "command": "python " + " ".join(sys.argv),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "load_average_1min": {"min": min(loads), "max": max(loads)},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "repeats": args.repeats,
        "versions": {
            "python": platform.python_version(),
            **{name: version(name) for name in ("jax", "jaxlib", "threadpoolctl")},
        },
        "what": "100 Levenberg-Marquardt steps, 2-state oscillator, 50x3 network, "
        "128 points, float64, compilation excluded",
        "seconds": times,
        "median_seconds": median,
        "min_max_seconds": {m: [min(t), max(t)] for m, t in times.items()},
        "unlimited_over_odefit": median["unlimited"] / median["odefit"],
        "odefit_over_omp1": median["odefit"] / median["OMP_NUM_THREADS=1"],
    }
    path = Path(args.out or Path(__file__).parent / "results" / "lapack_threads.json")
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(median, indent=2))


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"{time.perf_counter() - start:.0f} s")
