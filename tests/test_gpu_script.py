"""`benchmarks/gpu.py --dry`: the GPU speed rows at tiny sizes on the CPU, so that
the script is known to run before it meets a GPU."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "odefit_docs_benchmark_tables", ROOT / "docs" / "_tools" / "benchmark_tables.py"
)
benchmark_tables = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(benchmark_tables)


def dry_run(tmp_path, *options) -> dict:
    out = tmp_path / "gpu.json"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "benchmarks/gpu.py", "--dry", "--output", str(out), *options],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    data = json.loads(out.read_text())
    # The provenance every result file records (tests/test_figures.py).
    for key in ("command", "date", "repeats", "versions", "load_average_start"):
        assert key in data, key
    assert data["dry"] is True and data["gpus"] == []
    return data


def test_dry_run_of_the_ensemble_row(tmp_path):
    data = dry_run(tmp_path, "--rows", "ensemble")
    assert data["command"].endswith("--rows ensemble")
    runs = data["ensemble"]["runs"]
    assert set(runs) == {"sequential fit", "fit_ensemble (batch_size=None)"}
    ensemble = runs["fit_ensemble (batch_size=None)"]
    # The ensemble follows the sequential fits' trajectories.
    assert ensemble["max_loss_history_difference_vs_sequential"] < 1e-4
    assert ensemble["member_steps_per_s"] > 0
    assert "versus_pytorch" not in data and data["examples"] == {}
    table = benchmark_tables.gpu(data)
    assert "| fit_ensemble (batch_size=None) |" in table
    assert "no GPU (a dry run)" in table and "--rows ensemble" in table


@pytest.mark.slow
def test_dry_run_of_every_row(tmp_path):
    if importlib.util.find_spec("torch") is None:
        pytest.skip("the PyTorch rows need torch")
    data = dry_run(tmp_path, "--frameworks", "odefit,pytorch-eager")
    rows = data["versus_pytorch"]
    checked = rows["gradient_check"]["frameworks"]["pytorch-eager"]
    assert checked["grad_max_relative_error"] < 1e-3
    for row in ("oscillator", "large"):
        assert set(rows[row]["results"]) == {"odefit", "pytorch-eager"}, rows[row]
        assert all(r["steps_per_s"] > 0 for r in rows[row]["results"].values())
    assert rows["large"]["points"] > rows["oscillator"]["points"]
    assert "ensemble" in data
    (example,) = data["examples"].values()
    assert example["process_wall_s"] > 0 and example["returned"]
    table = benchmark_tables.gpu(data)
    assert "odefit steps/s | pytorch-eager steps/s |" in table


def test_without_a_gpu_a_real_run_is_refused():
    proc = subprocess.run(
        [sys.executable, "benchmarks/gpu.py"],
        cwd=ROOT,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert "JAX finds no GPU" in proc.stderr and "--dry" in proc.stderr
