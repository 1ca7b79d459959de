"""Is `fit_ensemble` on the shared training core as fast as it was before?

Times the same ensemble (16 damped oscillators, width-64 depth-3 PINNs, 256
redrawn points, Adam, 200 steps; compilation excluded by a first call) with two
source trees of odefit, alternating between them in fresh processes so that both
see the same machine load:

    git worktree add /tmp/odefit-before e7a7e87     # the commit before the core
    python benchmarks/ensemble_ab.py --before /tmp/odefit-before/src --rounds 3

Writes `benchmarks/results/ensemble_ab.json`: member-steps/s per run, for
`batch_size=8` and `None`, and the median ratio after/before.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

CHILD = r"""
import json, time
import jax.numpy as jnp, jax.random as jr, optax, odefit
def osc(t, y, dy, c):
    return -400.0 * y - c * dy
n, steps = 16, 200
problems = [odefit.SecondOrderIVP(osc, 0.0, 1.0, 1.0, 0.0, args=float(c))
            for c in jnp.linspace(2.0, 8.0, n)]
models = [odefit.PINN(p, width=64, depth=3, key=k)
          for p, k in zip(problems, jr.split(jr.key(0), n))]
out = {}
for bs in (8, None):
    kw = dict(steps=steps, optimizer=optax.adam(1e-3), collocation=odefit.Uniform(256),
              key=jr.key(1), progress=False, batch_size=bs, chunk_size=50)
    odefit.fit_ensemble(problems, models, **kw)  # compiles
    tic = time.perf_counter()
    odefit.fit_ensemble(problems, models, **kw)
    out[str(bs)] = n * steps / (time.perf_counter() - tic)
print(json.dumps(out))
"""

ROOT = Path(__file__).resolve().parents[1]


def run(src: str) -> dict:
    env = dict(os.environ, PYTHONPATH=src)
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    sys.path.insert(0, str(Path(__file__).parent))
    from _meta import complete

    parser = argparse.ArgumentParser()
    parser.add_argument("--before", required=True, help="src/ of the older tree")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    trees = {"after": str(ROOT / "src"), "before": args.before}
    runs = {name: [] for name in trees}
    loads = []
    for _ in range(args.rounds):
        for name, src in trees.items():
            loads.append(os.getloadavg()[0])
            runs[name].append(run(src))
            print(name, runs[name][-1], flush=True)
    out = {"member_steps_per_s": runs, "load_average_1min_per_run": loads}
    for bs in ("8", "None"):
        after = np.median([r[bs] for r in runs["after"]])
        before = np.median([r[bs] for r in runs["before"]])
        out[f"median_after_over_before_batch_{bs}"] = float(after / before)
    command = "python benchmarks/ensemble_ab.py " + " ".join(sys.argv[1:])
    complete(out, command, args.rounds)
    path = Path(args.out or Path(__file__).parent / "results" / "ensemble_ab.json")
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k.startswith("median")}))


if __name__ == "__main__":
    main()
