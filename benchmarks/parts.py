"""A first-order step on many points computed in parts of 2,048 points (odefit's
default above 4,096 points, `OptaxTrainer(part=2048)`) against all points at once
(`part=None`): the same loss and gradient, timed on the oscillator PINN of
`vs_pytorch.py` (at 4,096 points both run the same code: one part is not used).

For each size, `fit` runs 40 Adam steps on `Uniform(points)` once per trainer to
compile (compilation is not timed), then alternately with and without parts
(`--repeats` times each); the file records the milliseconds per step of every
run, their medians and the ratio of medians.

    python benchmarks/parts.py      # writes results/parts.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import jax.random as jr
import optax

import odefit
from odefit._trainers import PART, OptaxTrainer

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _meta import complete, load_average  # noqa: E402

SIZES = [(4096, 64), (8192, 64), (16384, 64), (16384, 128), (8192, 256)]
STEPS = 40


def oscillator(t, y, dy, args):
    return -400.0 * y - 4.0 * dy


def per_step_ms(problem, model, points: int, trainer) -> float:
    start = time.perf_counter()
    odefit.fit(
        problem,
        model,
        steps=STEPS,
        optimizer=trainer,
        collocation=odefit.Uniform(points),
        key=jr.key(1),
        progress=False,
    )
    return (time.perf_counter() - start) / STEPS * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    command = f"python benchmarks/parts.py --repeats {args.repeats}"
    out = {"part": PART, "steps_per_run": STEPS, "rows": []}
    complete(out, command, args.repeats)  # the load when the run starts
    problem = odefit.SecondOrderIVP(oscillator, 0.0, 1.0, 1.0, 0.0)
    for points, width in SIZES:
        model = odefit.PINN(problem, width=width, depth=3, key=jr.key(0))
        # One trainer each, reused: a new optax transformation is a new closure,
        # and `fit` would compile again for it.
        adam = optax.adam(1e-3)
        trainers = {
            "all points": OptaxTrainer(adam, part=None),
            "parts": OptaxTrainer(adam, part=PART),
        }
        runs = {name: [] for name in trainers}
        for trainer in trainers.values():  # compiles
            per_step_ms(problem, model, points, trainer)
        for _ in range(args.repeats):
            for name, trainer in trainers.items():
                runs[name].append(per_step_ms(problem, model, points, trainer))
        medians = {k: statistics.median(v) for k, v in runs.items()}
        row = {
            "points": points,
            "width": width,
            "ms_per_step": runs,
            "median_ms": medians,
            "speedup": medians["all points"] / medians["parts"],
        }
        print(json.dumps({k: row[k] for k in ("points", "width", "median_ms")}))
        out["rows"].append(row)
    out["load_average_end"] = load_average()
    path = HERE / "results" / "parts.json"
    path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
