"""Why large collocation sets are slow on a CPU: the compiled loss-and-gradient of
the oscillator PINN, profiled, and the same gradient computed in chunks of points.

For each size (points, width) of the `vs_pytorch.py` sweep that PyTorch's compiled
code wins, this records from XLA's compiled program: the FLOPs and bytes it
accesses per step (XLA's cost analysis), the shapes of its matrix products and its
number of fusions. Then it times, interleaved, `jax.value_and_grad` of
`odefit.loss` on all points at once ("full") against the same gradient summed
over chunks of the points inside one `lax.scan` ("chunk N": every chunk's
intermediates stay in the CPU's caches), after checking that both give the same
loss and gradient. (XLA's cost analysis counts a loop's body once, so the bytes
of a chunked program are those of one chunk.)

    python benchmarks/large_sizes.py            # writes results/large_sizes.json
    python benchmarks/large_sizes.py --quick

Times on a shared machine depend on its load, which the file records: compare
the ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import odefit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _meta import complete, load_average  # noqa: E402


def oscillator(t, y, dy, args):
    return -400.0 * y - 4.0 * dy


def functions(points: int, width: int, chunks):
    problem = odefit.SecondOrderIVP(oscillator, 0.0, 1.0, 1.0, 0.0)
    model = odefit.PINN(problem, width=width, depth=3, key=jr.key(0))
    params, static = eqx.partition(model, eqx.is_inexact_array)
    ts = jnp.linspace(0.0, 1.0, points, dtype=jnp.float32)

    def loss(p, t):
        return odefit.loss(eqx.combine(p, static), problem, t)

    def chunked(size):
        def value_and_grad(p, t):
            parts = t.reshape(-1, size)

            def body(total, part):
                out = jax.value_and_grad(loss)(p, part)
                return jax.tree.map(jnp.add, total, out), None

            zero = jax.tree.map(jnp.zeros_like, (jnp.zeros((), t.dtype), p))
            total, _ = jax.lax.scan(body, zero, parts)
            # The loss is a mean over points: the mean of the chunks' means.
            return jax.tree.map(lambda x: x / parts.shape[0], total)

        return jax.jit(value_and_grad)

    fns = {"full": jax.jit(jax.value_and_grad(loss))}
    fns.update({f"chunk {c}": chunked(c) for c in chunks if c < points})
    return fns, params, ts


def profile(fn, params, ts) -> dict:
    compiled = fn.lower(params, ts).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    hlo = compiled.as_text()
    # The output shapes of the matrix products (operands are named, not shaped).
    dots = re.findall(r"= f32\[([\d,]*)\]\{[^}]*\} dot\(", hlo)
    return {
        "flops": cost.get("flops"),
        "bytes_accessed": cost.get("bytes accessed"),
        "transcendentals": cost.get("transcendentals"),
        "fusions": len(re.findall(r" fusion\(", hlo)),
        "dot_output_shapes": sorted(set(dots)),
        "dots": len(dots),
    }


def measure(points, width, chunks, repeats, calls) -> dict:
    fns, params, ts = functions(points, width, chunks)
    reference = jax.block_until_ready(fns["full"](params, ts))
    out = {"points": points, "width": width, "runs": {}}
    for name, fn in fns.items():
        value = jax.block_until_ready(fn(params, ts))  # compiles
        difference = max(
            float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(b)) + 1e-30))
            for a, b in zip(
                jax.tree.leaves(value), jax.tree.leaves(reference), strict=True
            )
        )
        out["runs"][name] = {
            "max_relative_difference_vs_full": difference,
            **profile(fn, params, ts),
        }
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            tic = time.perf_counter()
            for _ in range(calls):
                value = fn(params, ts)
            jax.block_until_ready(value)
            times[name].append((time.perf_counter() - tic) / calls)
    full = float(np.median(times["full"]))
    for name, t in times.items():
        run = out["runs"][name]
        run["ms_median"] = 1e3 * float(np.median(t))
        run["ms_min_max"] = [1e3 * min(t), 1e3 * max(t)]
        run["time_ratio_to_full"] = float(np.median(t)) / full
    out["load_average_after"] = load_average()
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    sizes = (
        [(4096, 64), (1024, 256)]
        if args.quick
        else [
            (16384, 64),
            (4096, 64),
            (1024, 256),
        ]
    )
    command = "python benchmarks/large_sizes.py" + " --quick" * args.quick
    if args.repeats != 5:
        command += f" --repeats {args.repeats}"
    out = complete({"dtype": "float32"}, command, repeats=args.repeats)
    out["rows"] = []
    for points, width in sizes:
        print(f"{points} points, width {width} ...", file=sys.stderr, flush=True)
        chunks = [c for c in (256, 1024, 4096) if c < points]
        row = measure(points, width, chunks, args.repeats, calls=3)
        out["rows"].append(row)
        for name, r in row["runs"].items():
            print(
                f"  {name}: {r['ms_median']:.1f} ms ({r['time_ratio_to_full']:.2f} of "
                f"full), {r['bytes_accessed'] / 1e6:.0f} MB accessed",
                file=sys.stderr,
                flush=True,
            )
    out["load_average_end"] = load_average()
    path = Path(args.output) if args.output else HERE / "results" / "large_sizes.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")
    return out


if __name__ == "__main__":
    main()
