"""Markdown tables from the measured results in benchmarks/results/*.json.

The docs pages print these at build time (markdown-exec), so the site always shows
the numbers committed with the code, never numbers copied by hand. A result file
with a known layout gets its own table; any other is shown as a table of its
entries, so a new benchmark appears without changes here.
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"


def _load(name: str) -> dict:
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path.relative_to(ROOT)} is missing: run `python benchmarks/{name}.py` "
            "and commit its result"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def _number(x) -> str:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if x != 0 and (abs(x) < 1e-2 or abs(x) >= 1e5):
        return f"{x:.2e}"
    return f"{x:.3g}"


def fit_overhead(data: dict) -> str:
    rates, spread = data["steps_per_s"], data["steps_per_s_min_max"]
    lines = [
        "| training loop | steps/s (median) | min – max |",
        "|---|---|---|",
    ]
    for name in rates:
        low, high = spread[name]
        lines.append(
            f"| {name} | {_number(rates[name])} | {_number(low)} – {_number(high)} |"
        )
    low, high = data["ratio_min_max"]
    lines += [
        "",
        f"odefit / hand-written: **{data['ratio_odefit_over_hand']:.2f}** (median of "
        f"paired repeats; {low:.2f} – {high:.2f}). Network width "
        f"{data['width']}, depth 3; {data['points']} fixed collocation points; "
        f"{data['steps_per_repeat']:,} Adam steps per repeat, compilation excluded. "
        f"Machine: {data['machine']}.",
    ]
    return "\n".join(lines)


def _flatten(data, prefix=""):
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _flatten(value, f"{prefix}{key}." if prefix or key else "")
    elif isinstance(data, list) and all(not isinstance(x, (dict, list)) for x in data):
        yield prefix.rstrip("."), ", ".join(_number(x) for x in data)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _flatten(value, f"{prefix}{i}.")
    else:
        yield prefix.rstrip("."), _number(data)


def generic(data: dict) -> str:
    lines = ["| quantity | value |", "|---|---|"]
    for key, value in _flatten(data):
        lines.append(f"| {key} | {value} |")
    return "\n".join(lines)


RENDERERS = {"fit_overhead": fit_overhead}


def render(name: str) -> str:
    """The table for `benchmarks/results/<name>.json`."""
    return RENDERERS.get(name, generic)(_load(name))


def names() -> list[str]:
    return sorted(p.stem for p in RESULTS.glob("*.json"))
