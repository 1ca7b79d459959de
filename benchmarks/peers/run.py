"""The ODE leaderboard: every problem of `problems.py` with odefit (three modes)
and the peer libraries jinns, DeepXDE and NeuroDiffEq, each peer in its own
virtual environment, each run in its own process under the same wall-time
budget. One command reruns everything:

    python benchmarks/peers/run.py [--budget 60] [--only odefit,jinns,...]
                                   [--problems damped,bratu,...]

It creates the peer environments if missing (`envs.py`, pinned versions),
writes the references (`problems.py`), runs every (problem, runner) pair and
merges the result lines, with the metadata of `benchmarks/_meta.py` (command,
date, machine, load before and after, versions of odefit and of every peer),
into `benchmarks/results/peers.json`. Then `python benchmarks/peers/plot.py`
draws the error-vs-time figures for the docs.

Every run is single-threaded (one core): the machine's two cores are shared,
and PyTorch's and XLA's thread pools slow down by orders of magnitude when
their threads compete with other processes for the cores.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import envs  # noqa: E402
import problems  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "peers.json"
ODEFIT_MODES = ("default", "recipe32", "recipe64")
RUNNERS = ("odefit", "jinns", "deepxde", "neurodiffeq")
SINGLE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "JAX_PLATFORMS": "cpu",
    "PYTHONUNBUFFERED": "1",
}


def _jobs(names, only):
    for name in names:
        for runner in RUNNERS:
            if runner not in only:
                continue
            if runner == "odefit":
                for mode in ODEFIT_MODES:
                    yield name, runner, mode
            else:
                yield name, runner, "tutorial"


def _command(name, runner, mode, budget, seed, out):
    common = ["--problem", name, "--budget", str(budget), "--seed", str(seed)]
    common += ["--out", str(out)]
    if runner == "odefit":
        script = HERE / "run_odefit.py"
        return [sys.executable, str(script), *common, "--mode", mode]
    return [str(envs.python(runner)), str(HERE / f"run_{runner}.py"), *common]


def _peer_versions(peers):
    out = {}
    for peer in peers:
        packages = ["jinns", "jax", "jaxlib"] if peer == "jinns" else [peer, "torch"]
        code = (
            "import json, importlib.metadata as m, platform; "
            f"print(json.dumps({{p: m.version(p) for p in {packages!r}}} | "
            "{'python': platform.python_version()}))"
        )
        res = subprocess.run(
            [str(envs.python(peer)), "-c", code], capture_output=True, text=True
        )
        out[peer] = json.loads(res.stdout) if res.returncode == 0 else res.stderr
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--only", default=",".join(RUNNERS))
    parser.add_argument("--problems", default=",".join(problems.NAMES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=None, help="per run (s)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    only = args.only.split(",")
    names = args.problems.split(",")
    for name in names:
        problems.problem(name)
    for runner in only:
        if runner not in RUNNERS:
            parser.error(f"--only: {runner!r} is not one of {RUNNERS}")
    peers = [r for r in only if r != "odefit"]
    for peer in peers:
        envs.ensure(peer)
    subprocess.run([sys.executable, str(HERE / "problems.py")], check=True)

    import _meta

    command = "python benchmarks/peers/run.py " + " ".join(argv or sys.argv[1:])
    out = {
        "budget": args.budget,
        "seed": args.seed,
        "problems": {n: problems.PROBLEMS[n] for n in names},
        "threads": "one per run: "
        + ", ".join(f"{k}={v}" for k, v in SINGLE_THREAD.items()),
        "peer_versions": _peer_versions(peers),
    }
    _meta.complete(out, command.strip(), repeats=1)
    lines = HERE / ".results.jsonl"
    lines.unlink(missing_ok=True)
    env = dict(os.environ, **SINGLE_THREAD)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), env.get("PYTHONPATH", "")]
    ).rstrip(os.pathsep)
    timeout = args.timeout or 4 * args.budget + 120
    rows = []
    for name, runner, mode in _jobs(names, only):
        start = time.perf_counter()
        before = lines.stat().st_size if lines.exists() else 0
        cmd = _command(name, runner, mode, args.budget, args.seed, lines)
        load = os.getloadavg()[0]
        try:
            res = subprocess.run(
                cmd, env=env, capture_output=True, text=True, timeout=timeout
            )
            failed = res.returncode != 0
            detail = (res.stderr or res.stdout)[-2000:]
        except subprocess.TimeoutExpired:
            failed, detail = True, f"timed out after {timeout:.0f} s"
        after = lines.stat().st_size if lines.exists() else 0
        if failed or after == before:
            row = {
                "problem": name,
                "library": runner,
                "mode": mode,
                "status": "error",
                "reason": detail,
                "budget": args.budget,
            }
        else:
            with open(lines) as f:
                f.seek(before)
                row = json.loads(f.read().strip().splitlines()[-1])
        row["load_start"] = round(load, 2)
        row["process_seconds"] = round(time.perf_counter() - start, 1)
        rows.append(row)
        best = row.get("best_error")
        print(
            f"{name:24s} {runner:12s} {mode:9s} {row['status']:14s} "
            f"best {best if best is None else f'{best:.2e}'} "
            f"({row['process_seconds']} s, load {load:.1f})",
            flush=True,
        )
        out["rows"] = rows
        out["load_average_end"] = _meta.load_average()
        pathlib.Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
