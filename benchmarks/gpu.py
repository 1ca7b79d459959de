"""The speed rows on a GPU: odefit against PyTorch on the same GPU, large sizes,
an ensemble, and the examples' wall times, in one run.

    pip install -e ".[cuda12,torch]"     # JAX's CUDA build, PyTorch
    python benchmarks/gpu.py             # writes benchmarks/results/gpu.json
    python benchmarks/gpu.py --dry       # tiny sizes on whatever device there is
                                         # (a CPU): checks the script, publishes
                                         # nothing

The rows, all from the other benchmark scripts' own code:

1. **oscillator steps/s** (the second-order oscillator of `vs_pytorch.py`, 1,024
   points, width 64): odefit against PyTorch eager and `torch.compile` on the same
   GPU, after the gradient check of `vs_pytorch.py` (every framework's loss and
   gradient must agree with odefit's before anything is timed);
2. **16k points**: the same at 16,384 points;
3. **ensemble**: 64 oscillator PINNs in one `fit_ensemble` against 64 sequential
   `fit` calls (`ensemble.py`);
4. **examples**: each example of `examples.py` at its real settings, its wall
   time (compilation included) and the errors it reports.

Both frameworks compute in full float32: JAX's default matmul precision on recent
NVIDIA GPUs is TF32 while PyTorch's is not, so the script sets
`JAX_DEFAULT_MATMUL_PRECISION=highest` (recorded in the file; pass `--tf32` to let
both use TF32 instead). Every process of the run shares the one GPU, so JAX's
preallocation of 75% of its memory is turned off (`XLA_PYTHON_CLIENT_PREALLOCATE`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# Before JAX starts, in this process and in every process it starts (workers,
# examples), which inherit the environment.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
if "--tf32" in sys.argv[1:]:
    os.environ.setdefault("TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "1")
else:
    os.environ.setdefault("JAX_DEFAULT_MATMUL_PRECISION", "highest")

import ensemble  # noqa: E402  (benchmarks/ensemble.py)
import examples  # noqa: E402  (benchmarks/examples.py)
import jax  # noqa: E402
import numpy as np  # noqa: E402
from _meta import complete, load_average  # noqa: E402

# The sizes of a real run and of a dry run (which only checks the script).
SIZES = {
    "real": dict(
        points=1024,
        width=64,
        large_points=16384,
        repeats=5,
        target_s=2.0,
        check_points=1024,
        ensemble=dict(members=64, steps=500, width=64, points=256, batch_sizes=()),
        examples=examples.DEFAULT,
        example_mode="real",
        peak=True,
    ),
    "dry": dict(
        points=64,
        width=8,
        large_points=128,
        repeats=1,
        target_s=0.05,
        check_points=64,
        ensemble=dict(members=2, steps=10, width=8, points=32, batch_sizes=()),
        examples=("exponential_decay",),
        example_mode="smoke",
        peak=False,
    ),
}


def gpu_devices() -> list[str]:
    return [str(d) for d in jax.devices() if d.platform == "gpu"]


def versus_pytorch(frameworks, sizes) -> dict:
    """Rows 1 and 2 with `vs_pytorch.py`'s worker processes and timing."""
    import vs_pytorch as vs  # needs PyTorch

    out = {"torch_device": str(vs.torch_device())}
    workers = {name: vs.Worker(name) for name in frameworks}
    try:
        spec = vs.OSCILLATOR
        variant = None
        if "pytorch-compile" in workers:
            n = sizes["check_points"]
            ts = np.linspace(spec.t0, spec.t1, n, dtype=np.float32)
            key = ("reference", spec.name)
            workers["odefit"].call("setup", key, "odefit", spec.name, 64, 1000)
            _, reference = workers["odefit"].call("loss_and_grads", key, ts)
            probes = {}
            for v in vs.COMPILE_VARIANTS:
                vs.log(f"probing torch.compile ({v}) ...")
                probes[v] = vs.probe_compile(
                    workers["pytorch-compile"], spec, v, ts, reference
                )
                if probes[v]["ok"]:
                    variant = v
                    break
            out["torch_compile_probes"] = probes
        vs.log("gradient check ...")
        out["gradient_check"] = vs.gradient_check(
            workers, spec, sizes["check_points"], variant
        )
        if sizes["peak"]:
            out["peak"] = workers["odefit"].call("matmul_peak")
        for row, points in (("oscillator", sizes["points"]), ("large", None)):
            points = points or sizes["large_points"]
            vs.log(f"steady state, {points} points ...")
            results, failures = vs.steady_state(
                workers,
                spec,
                sizes["width"],
                points,
                sizes["repeats"],
                sizes["target_s"],
                variant,
            )
            out[row] = {
                "points": points,
                "width": sizes["width"],
                "repeats": sizes["repeats"],
                "results": results,
                "failures": failures,
            }
            for name, r in results.items():
                vs.log(f"  {name}: {r['steps_per_s']:.1f} steps/s")
    finally:
        for worker in workers.values():
            worker.close()
    return out


ROWS = ("pytorch", "ensemble", "examples")


def run(dry: bool, frameworks, output: Path, tf32: bool, rows=ROWS) -> dict:
    sizes = SIZES["dry" if dry else "real"]
    command = "python benchmarks/gpu.py" + " --dry" * dry + " --tf32" * tf32
    if tuple(rows) != ROWS:
        command += " --rows " + ",".join(rows)
    out = {
        "dry": dry,
        "gpus": gpu_devices(),
        "jax_default_matmul_precision": str(jax.config.jax_default_matmul_precision),
        "torch_tf32": tf32,
        "sizes": {k: list(v) if isinstance(v, tuple) else v for k, v in sizes.items()},
    }
    out = complete(out, command, repeats=sizes["repeats"])
    try:
        import torch  # noqa: F401
    except ImportError:
        out["pytorch"] = "not installed: pip install 'odefit[torch]'"
    else:
        if "pytorch" in rows:
            tic = time.perf_counter()
            out["versus_pytorch"] = versus_pytorch(frameworks, sizes)
            out["versus_pytorch"]["wall_s"] = time.perf_counter() - tic
    if "ensemble" in rows:
        print("ensemble ...", file=sys.stderr, flush=True)
        out["ensemble"] = ensemble.main(**sizes["ensemble"], write=False)
        out["ensemble"]["command"] = f"{command} (its ensemble row)"
    out["examples"] = {}
    for name in sizes["examples"] if "examples" in rows else ():
        print(f"examples/{name}.py ...", file=sys.stderr, flush=True)
        out["examples"][name] = examples.run_example(name, sizes["example_mode"])
    out["load_average_end"] = load_average()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {output}")
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dry", action="store_true", help="tiny sizes on any device; publishes nothing"
    )
    parser.add_argument(
        "--frameworks",
        default="odefit,pytorch-eager,pytorch-compile",
        help="of vs_pytorch.py's frameworks (odefit is always run)",
    )
    parser.add_argument(
        "--tf32", action="store_true", help="TF32 matmuls on both sides"
    )
    parser.add_argument("--output", default=None, help="the JSON file to write")
    parser.add_argument(
        "--rows", default=",".join(ROWS), help=f"a subset of {', '.join(ROWS)}"
    )
    args = parser.parse_args(argv)
    rows = tuple(r for r in args.rows.split(",") if r)
    for r in rows:
        if r not in ROWS:
            parser.error(f"unknown row {r!r}; choose from {', '.join(ROWS)}")
    if not args.dry and not gpu_devices():
        parser.error(
            f"JAX finds no GPU (jax.devices() = {jax.devices()}): install JAX's "
            "CUDA build (pip install -e '.[cuda12]'), or pass --dry to check the "
            "script at tiny sizes."
        )
    frameworks = list(dict.fromkeys(["odefit", *args.frameworks.split(",")]))
    if args.output is not None:
        output = Path(args.output)
    elif args.dry:
        output = Path(tempfile.gettempdir()) / "odefit_gpu_dry.json"
    else:
        output = HERE / "results" / "gpu.json"
    return run(args.dry, frameworks, output, args.tf32, rows)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
