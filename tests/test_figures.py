"""Every measured figure in README.md, the docs pages and the docstrings agrees with
the result file it comes from, and every result file says how it was produced
(STYLE.md rule 24). The figures and their sources are listed in
docs/_tools/figures.py."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "odefit_docs_figures", ROOT / "docs" / "_tools" / "figures.py"
)
figures = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = figures
_spec.loader.exec_module(figures)


@pytest.mark.parametrize(
    "figure", figures.FIGURES, ids=lambda f: f"{f.page}: {f.template[:50]}"
)
def test_figure_matches_its_result_file(figure):
    expected = figures.normalise(figure.text())
    page = figures.text_of(figure.page)
    assert expected in page, (
        f"{figure.page} should contain, from benchmarks/results/:\n  {expected}\n"
        "Update the page (or the template in docs/_tools/figures.py)."
    )


@pytest.mark.parametrize(
    "page", [figures.relative(p) for p in figures.pages()], ids=str
)
def test_no_figure_without_a_result(page):
    found = figures.unaccounted(page)
    assert not found, (
        f"{page} has figures that look measured but come from no result file: "
        + "; ".join(found)
        + ". Add each to FIGURES (with its result file) or, if it is a setting, a "
        "tolerance or a default, to NOT_MEASURED in docs/_tools/figures.py."
    )


def test_not_measured_phrases_exist():
    """A phrase allowed as 'not a measurement' that is no longer on its page is
    stale: remove it, so the list cannot hide a new figure later."""
    for entry in figures.NOT_MEASURED:
        assert figures.normalise(entry.phrase) in figures.text_of(entry.page), entry


def test_pending_replacements_are_pending():
    """A `PENDING` replacement holds only while the stale text is there; once the
    owner of the module has applied it, its entry must go."""
    for entry in figures.PENDING:
        text = figures.text_of(entry.page, with_pending=False)
        assert figures.normalise(entry.old) in text, (
            f"{entry.page} no longer has the stale text; remove its PENDING entry"
        )


def _has_load(data: dict) -> bool:
    machine = data.get("machine")
    keys = list(data) + (list(machine) if isinstance(machine, dict) else [])
    return any("load" in k for k in keys)


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / "benchmarks" / "results").glob("*.json")),
    ids=lambda p: p.name,
)
def test_result_file_records_its_provenance(path):
    data = json.loads(path.read_text(encoding="utf-8"))
    missing = [k for k in ("command", "date", "repeats", "versions") if k not in data]
    assert not missing, f"{path.name} does not record {missing}"
    assert _has_load(data), f"{path.name} does not record the machine's load"
    assert "python " in data["command"], data["command"]
    assert "jax" in data["versions"], data["versions"]


def test_template_format_helpers():
    assert figures.e(1.234e-4) == "1.2e-4"
    assert figures.e(3.8) == "3.8e0"
    assert figures.tex(1.2e-7) == r"$1.2 \times 10^{-7}$"
    assert figures.pct(0.0148) == "1.5%"
    assert figures.sec(21.02) == "21 s" and figures.sec(5.14) == "5.1 s"


def test_scanner_finds_a_figure_without_a_result(tmp_path, monkeypatch):
    page = tmp_path / "README.md"
    page.write_text(
        "It runs 2.5× faster and reaches 3e-7 in 12 s.\n\n```python\nx = 1e-3\n```\n"
    )
    monkeypatch.setattr(figures, "ROOT", tmp_path)
    found = figures.unaccounted("README.md")
    assert len(found) == 3, found
    assert not any("1e-3" in f for f in found)
