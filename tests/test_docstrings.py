"""Every public name has a docstring and an API-reference entry, and every example
inside a public docstring runs.

The examples are the fenced ```python blocks of the docstrings of `odefit`,
`odefit.torchlike`, their public names and those names' public methods. Each runs
in a fresh namespace in a temporary folder; one that changes JAX's configuration
runs in its own process instead (tests never change it in-process). Examples
that train (call `fit`, `fit_ensemble`, `fit_stages`, ...) are marked slow.
"""

import importlib
import importlib.util
import inspect
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_coverage():
    spec = importlib.util.spec_from_file_location(
        "odefit_docs_tools.api_coverage", ROOT / "docs" / "_tools" / "api_coverage.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


coverage = _load_coverage()

_FENCE_OPEN = re.compile(r"^(\s*)```\s*(python|py)\b[^`]*$")
_FENCE_CLOSE = re.compile(r"^\s*```\s*$")


def python_blocks(doc: str) -> list[str]:
    """The fenced Python blocks of a Markdown docstring."""
    blocks, lines, current = [], doc.splitlines(), None
    for line in lines:
        if current is None:
            if _FENCE_OPEN.match(line):
                current = []
        elif _FENCE_CLOSE.match(line):
            blocks.append(textwrap.dedent("\n".join(current)).strip() + "\n")
            current = None
        else:
            current.append(line)
    if current is not None:
        raise ValueError(f"unclosed ```python block in:\n{doc}")
    return blocks


def docstring_examples() -> list[tuple[str, str]]:
    """`(where, code)` for every example, without duplicates (an override that
    inherits its base's docstring is run once)."""
    docs = []
    for module_name in coverage.documented_modules():
        module = importlib.import_module(module_name)
        docs.append((module_name, inspect.getdoc(module) or ""))
    for name, obj in coverage.all_public_names().items():
        docs.append((name, coverage.own_docstring(obj) or ""))
        if inspect.isclass(obj):
            for member in coverage.public_members(obj):
                doc = coverage.member_docstring(obj, member) or ""
                docs.append((f"{name}.{member}", doc))
    seen, out = set(), []
    for where, doc in docs:
        for i, code in enumerate(python_blocks(doc)):
            if code not in seen:
                seen.add(code)
                out.append((f"{where}[{i}]", code))
    return out


EXAMPLES = docstring_examples()


def test_every_public_name_has_an_api_entry():
    missing = coverage.missing_entries()
    assert not missing, "\n" + "\n".join(missing)


def test_no_api_entry_for_a_name_that_is_not_public():
    stale = coverage.stale_entries()
    assert not stale, "\n" + "\n".join(stale)


def test_every_public_name_has_a_docstring():
    missing = coverage.missing_docstrings()
    assert not missing, (
        "\nEvery public name (and public method) needs a docstring in the house "
        "style (summary, **Arguments:**, **Returns:**, example):\n" + "\n".join(missing)
    )


def test_public_names_are_found():
    # Guards the two tests above against a discovery that silently finds nothing.
    names = coverage.all_public_names()
    for expected in ("odefit.fit", "odefit.IVP", "odefit.PINN", "odefit.FitResult"):
        assert expected in names
    assert len(EXAMPLES) >= 5, EXAMPLES


def test_python_blocks_parser():
    doc = (
        "Text.\n\n```python\nx = 1\n```\n\n```\nnot python\n```\n\n"
        "  ```py\n  y = 2\n  ```"
    )
    assert python_blocks(doc) == ["x = 1\n", "y = 2\n"]
    with pytest.raises(ValueError, match="unclosed"):
        python_blocks("```python\nx = 1\n")


def _trains(code: str) -> bool:
    """Examples that run a training loop take seconds each, more under load."""
    return re.search(r"\bfit(_\w+)?\(", code) is not None


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(code, id=where, marks=[pytest.mark.slow] if _trains(code) else [])
        for where, code in EXAMPLES
    ],
)
def test_docstring_example_runs(code, tmp_path, monkeypatch):
    if re.search(r"^\s*(import torch|from torch)\b", code, re.MULTILINE):
        pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    if "jax.config" in code:
        env = dict(os.environ, MPLBACKEND="Agg", TQDM_DISABLE="1")
        proc = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return
    namespace = {"__name__": "__docstring_example__"}
    try:
        exec(compile(code, "<docstring example>", "exec"), namespace)
    finally:
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")
