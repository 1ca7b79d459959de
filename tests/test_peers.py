"""The ODE leaderboard's plumbing (`benchmarks/peers/`), without the peer
libraries: the shared references, the training clock and error curve, odefit's
runner, the results renderer of the docs page and the figures script."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / "benchmarks" / "peers"
for _path in (PEERS, ROOT / "benchmarks", ROOT / "docs" / "_tools"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import benchmark_tables  # noqa: E402
import common  # noqa: E402
import problems  # noqa: E402


def test_references_cover_every_problem_and_match_exact_solutions():
    assert len(problems.NAMES) >= 8
    kinds = {problems.PROBLEMS[n]["kind"] for n in problems.NAMES}
    for kind in ("scalar", "system", "second order", "BVP", "long horizon", "inverse"):
        assert kind in kinds, kind
    for name in problems.NAMES:
        ref = problems.reference(name)
        spec = problems.problem(name)
        assert ref["ts"].shape == (problems.N_EVAL,)
        assert ref["ts"][0] == spec["t0"] and math.isclose(ref["ts"][-1], spec["t1"])
        assert ref["ys"].shape[0] == problems.N_EVAL
        assert np.all(np.isfinite(ref["ys"]))
    # Two references checked against closed forms here, independently of odefit.
    t = problems.reference("damped")["ts"]
    omega = math.sqrt(400 - 4)
    exact = np.exp(-2 * t) * (np.cos(omega * t) + 2 / omega * np.sin(omega * t))
    np.testing.assert_allclose(
        problems.reference("damped")["ys"][:, 0], exact, atol=1e-12
    )
    t = problems.reference("harmonic_long")["ts"]
    np.testing.assert_allclose(
        problems.reference("harmonic_long")["ys"][:, 0], np.sin(t), atol=1e-8
    )
    inverse = problems.reference("inverse_lotka_volterra")
    assert inverse["obs_ts"].shape == (40,) and inverse["obs_ys"].shape == (40, 2)


def test_bad_problem_name_is_refused():
    with pytest.raises(ValueError, match="`problem` must be one of"):
        problems.problem("lorenz96")


def test_recorder_clock_marks_and_summary():
    ref = np.ones((5, 1))
    state = {"value": 3.0}
    rec = common.Recorder(1.0, lambda: np.full((5, 1), state["value"]), ref)

    def train(n):  # a fake trainer: halves the error per step, 1 ms each
        import time

        time.sleep(1e-3 * n)
        state["value"] = 1 + (state["value"] - 1) * 0.5**n

    common.drive(rec, train)
    summary = rec.summary()
    times = [t for t, _, _ in summary["curve"]]
    errors = [e for _, _, e in summary["curve"]]
    assert times[0] == 0 and times == sorted(times)
    assert 1.0 <= summary["train_time"] < 1.5
    assert 10 <= len(times) <= 14  # the start, about one per tenth, the end
    assert errors[0] == pytest.approx(2.0)
    assert summary["best_error"] == min(errors) < 1e-3
    assert summary["time_to_1e-02"] <= summary["time_to_1e-03"]
    assert summary["steps_per_s"] == summary["steps"] / summary["train_time"]
    assert common.relative_l2([[np.nan]], [[1.0]]) == float("inf")


def test_odefit_runner_writes_a_curve():
    import run_odefit

    row = run_odefit.run("lagaris1", "default", budget=1.0)
    assert row["library"] == "odefit" and row["status"] == "ok"
    assert row["curve"][0][1] == 0 and row["steps"] > 0
    assert row["train_time"] >= 1.0
    assert row["best_error"] == min(e for _, _, e in row["curve"])
    json.dumps(row)
    with pytest.raises(ValueError, match="`mode` must be one of"):
        run_odefit.run("lagaris1", "fastest", budget=1.0)


def _row(problem, library, mode, best, t3=None, status="ok"):
    if status != "ok":
        return {
            "problem": problem,
            "library": library,
            "mode": mode,
            "status": status,
            "reason": "cannot",
        }
    return {
        "problem": problem,
        "library": library,
        "mode": mode,
        "status": "ok",
        "settings": {"precision": "float64"},
        "curve": [[0.0, 0, 1.0], [1.0, 10, best]],
        "steps": 10,
        "steps_per_s": 10.0,
        "best_error": best,
        "final_error": best,
        "time_to_1e-02": 1.0 if best <= 1e-2 else None,
        "time_to_1e-03": t3,
        "load_start": 1.0,
    }


def _fake_results():
    rows = [
        _row("damped", "odefit", "default", 1e-2),
        _row("damped", "odefit", "recipe64", 1e-6, t3=1.0),
        _row("damped", "jinns", "tutorial", 1e-4, t3=2.0),
        _row("damped", "neurodiffeq", "tutorial", 0, status="not expressed"),
        _row("bratu", "odefit", "recipe64", 1e-4, t3=3.0),
        _row("bratu", "deepxde", "tutorial", 1e-5, t3=2.0),
    ]
    return {
        "budget": 1.0,
        "seed": 0,
        "date": "2026-01-01",
        "command": "python benchmarks/peers/run.py",
        "problems": {n: problems.PROBLEMS[n] for n in ("damped", "bratu")},
        "versions": {"odefit": "0.1.0", "jax": "0"},
        "peer_versions": {"jinns": {"jinns": "1", "jax": "0"}},
        "machine": {"cores": 2, "cpu": "x86_64"},
        "load_average_start": [1.0],
        "load_average_end": [1.0],
        "rows": rows,
    }


def test_renderer_tables_and_verdict():
    data = _fake_results()
    table = benchmark_tables.peers(data)
    assert "| damped | second order |" in table and "**1.00e-06**" in table
    assert "not expressed" in table
    page = benchmark_tables.peers_problem(data, "damped")
    assert "not expressed: cannot" in page and "_static/leaderboard" not in page
    assert "damped.png" in benchmark_tables.peers_problem(data, "damped", figure=True)
    verdicts = {v["problem"]: v for v in benchmark_tables.peers_verdicts(data)}
    assert verdicts["damped"]["lower"] and verdicts["damped"]["sooner"]
    assert not verdicts["bratu"]["lower"] and not verdicts["bratu"]["sooner"]
    closing = benchmark_tables.peers_closing(data)
    assert "**1 of 2**" in closing and "deepxde reaches a lower error" in closing
    assert "jinns 1" in benchmark_tables.peers_meta(data)


def test_committed_results_render():
    path = ROOT / "benchmarks" / "results" / "peers.json"
    if not path.is_file():
        pytest.skip("benchmarks/results/peers.json not produced yet")
    data = json.loads(path.read_text())
    for row in data["rows"]:
        assert row["status"] in ("ok", "not expressed", "error"), row["status"]
    benchmark_tables.render("peers")
    for name in data["problems"]:
        benchmark_tables.peers_problem(data, name)
        assert (ROOT / "docs" / "_static" / "leaderboard" / f"{name}.png").is_file()


def test_plot_writes_one_png_per_problem(tmp_path):
    import plot

    written = plot.plot(_fake_results(), tmp_path)
    assert sorted(p.name for p in written) == ["bratu.png", "damped.png"]
    assert all(p.stat().st_size > 1000 for p in written)
