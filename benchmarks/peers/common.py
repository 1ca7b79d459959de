"""The harness every runner shares: the training clock, the error curve and the
result line. Standard library and NumPy only (it runs in every peer's
environment).

The clock counts training only: each evaluation of the error against the
reference happens with the clock stopped. The error is recorded at the start and
each time the clock passes another tenth of the budget; the run stops once the
clock reaches the budget.
"""

import argparse
import json
import math
import sys
import time

import numpy as np
import problems

MARKS = 10


def relative_l2(pred, ref) -> float:
    pred = np.asarray(pred, dtype=np.float64).reshape(np.shape(ref))
    ref = np.asarray(ref, dtype=np.float64)
    value = float(np.linalg.norm((pred - ref).ravel()) / np.linalg.norm(ref.ravel()))
    return value if math.isfinite(value) else float("inf")


class Recorder:
    """The training clock and error curve of one run.

    `evaluate()` returns the prediction on the reference times (shape
    `(N_EVAL, dim)` or broadcastable); it runs with the clock stopped.
    """

    def __init__(self, budget: float, evaluate, ref_ys, marks: int = MARKS):
        self.budget = float(budget)
        self.evaluate = evaluate
        self.ref_ys = ref_ys
        self.interval = self.budget / marks
        self.next_mark = self.interval
        self.train_time = 0.0
        self.steps = 0
        self.curve = []  # [seconds, steps, relative L2]
        self._started = None

    @property
    def done(self) -> bool:
        return self.train_time >= self.budget

    def record(self) -> float:
        error = relative_l2(self.evaluate(), self.ref_ys)
        self.curve.append([round(self.train_time, 4), self.steps, error])
        while self.next_mark <= self.train_time:
            self.next_mark += self.interval
        return error

    def start(self) -> None:
        """Start the clock (after the first evaluation)."""
        self._started = time.perf_counter()

    def stop(self, steps: int) -> None:
        """Stop the clock after `steps` more training steps; record the error if a
        mark was passed."""
        self.train_time += time.perf_counter() - self._started
        self.steps += steps
        if self.train_time >= self.next_mark or self.done:
            self.record()

    def add(self, seconds: float, steps: int) -> None:
        """Like `stop`, for a chunk timed by the caller."""
        self.train_time += seconds
        self.steps += steps
        if self.train_time >= self.next_mark or self.done:
            self.record()

    def finish(self) -> None:
        if not self.curve or self.curve[-1][0] != round(self.train_time, 4):
            self.record()

    def summary(self) -> dict:
        errors = [e for _, _, e in self.curve]
        out = {
            "curve": self.curve,
            "steps": self.steps,
            "train_time": self.train_time,
            "steps_per_s": self.steps / self.train_time if self.train_time else None,
            "best_error": min(errors) if errors else None,
            "final_error": errors[-1] if errors else None,
        }
        for tol in (1e-2, 1e-3):
            hit = [t for t, _, e in self.curve if e <= tol]
            out[f"time_to_{tol:.0e}"] = hit[0] if hit else None
        return out


def drive(recorder: Recorder, train, chunks_per_mark: int = 5) -> None:
    """Train by `train(n)` (n steps) until the budget is spent, with chunks of
    about a fifth of a mark, sized from the measured rate."""
    recorder.record()
    n = 1
    while not recorder.done:
        recorder.start()
        train(n)
        before = recorder.train_time
        recorder.stop(n)
        seconds = max(recorder.train_time - before, 1e-6)
        target = min(
            recorder.interval / chunks_per_mark, recorder.budget - recorder.train_time
        )
        n = max(1, int(n / seconds * target))
    recorder.finish()


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--problem", required=True, choices=problems.NAMES)
    p.add_argument("--budget", type=float, default=60.0, help="training seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="append the JSON line here")
    return p


def emit(row: dict, out: str | None) -> None:
    line = json.dumps(row)
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")
    print(line, file=sys.stdout, flush=True)


def unsupported(args, library: str, mode: str, version: str, reason: str) -> None:
    emit(
        {
            "problem": args.problem,
            "library": library,
            "mode": mode,
            "version": version,
            "status": "not expressed",
            "reason": reason,
            "budget": args.budget,
        },
        args.out,
    )
