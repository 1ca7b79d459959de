"""Which public names of odefit lack an API-reference entry or a docstring.

Used by the docs build (docs/_tools/hooks.py, which fails a strict build) and by
tests/test_docstrings.py, so that both name exactly what is missing.

A *public name* is every attribute of a documented module that does not start with
an underscore and is not a module (or, when the module defines `__all__`, exactly
the names in it). An *API entry* is a line `::: odefit.Name` in one of the pages
under docs/api/.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
API_DIR = ROOT / "docs" / "api"

# The modules whose public names must all be documented. A subpackage that does
# not exist (yet) is skipped; one that exists but fails to import is an error.
MODULES = ("odefit", "odefit.torchlike")

_ENTRY = re.compile(r"^:::\s+([\w.]+)\s*$", re.MULTILINE)


def documented_modules() -> list[str]:
    """The modules of `MODULES` that exist in this checkout."""
    out = []
    for name in MODULES:
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            spec = None
        if spec is not None:
            out.append(name)
    return out


def public_names(module_name: str) -> dict[str, object]:
    """`{qualified name: object}` for every public name of `module_name`."""
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            name
            for name, value in vars(module).items()
            if not name.startswith("_") and not inspect.ismodule(value)
        ]
    return {f"{module_name}.{name}": getattr(module, name) for name in sorted(names)}


def all_public_names() -> dict[str, object]:
    out = {}
    for module_name in documented_modules():
        out.update(public_names(module_name))
    return out


def api_entries(api_dir: Path = API_DIR) -> dict[str, str]:
    """`{qualified name: page}` for every `::: name` line under `api_dir`."""
    out = {}
    for page in sorted(api_dir.glob("*.md")):
        for name in _ENTRY.findall(page.read_text(encoding="utf-8")):
            out.setdefault(name, page.relative_to(ROOT).as_posix())
    return out


def missing_entries(api_dir: Path = API_DIR) -> list[str]:
    """Public names without a `::: name` entry, each with a hint where to add it."""
    entries = api_entries(api_dir)
    return [
        f"{name} has no API entry: add the line `::: {name}` to a page in "
        f"docs/api/ (e.g. docs/api/{_suggest_page(name)})"
        for name in all_public_names()
        if name not in entries
    ]


def stale_entries(api_dir: Path = API_DIR) -> list[str]:
    """Entries naming something that is no longer public (renamed or removed)."""
    public = all_public_names()
    modules = set(documented_modules())
    out = []
    for name, page in api_entries(api_dir).items():
        module = name.rsplit(".", 1)[0]
        if module in modules and name not in public:
            out.append(f"{page} documents `{name}`, which is not a public name")
    return out


def _suggest_page(name: str) -> str:
    return "torchlike.md" if name.startswith("odefit.torchlike.") else "utilities.md"


def own_docstring(obj) -> str | None:
    """The docstring written for `obj` itself (not one inherited from a base class,
    nor the `Name(field, ...)` signature that dataclasses fill in)."""
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__")
        if doc and dataclasses.is_dataclass(obj):
            signature = f"{obj.__name__}("
            if doc.strip().startswith(signature):
                return None
    else:
        doc = getattr(obj, "__doc__", None)
        if doc is not None and type(obj).__doc__ == doc and not callable(obj):
            # An instance (e.g. a constant) only has its type's docstring.
            return None
    return inspect.cleandoc(doc) if doc and doc.strip() else None


def public_members(cls) -> dict[str, object]:
    """Public methods and properties defined on `cls` itself (not on
    `eqx.Module`, `object` or other third-party bases)."""
    out = {}
    for klass in cls.__mro__:
        module = getattr(klass, "__module__", "") or ""
        if not module.startswith("odefit"):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_") or name in out:
                continue
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if inspect.isfunction(value) or isinstance(value, property):
                out[name] = getattr(cls, name, value)
    return out


def member_docstring(cls, name: str) -> str | None:
    """The docstring of `cls.name`, inherited from an odefit base class if the
    override has none (an override keeps its base's contract)."""
    for klass in cls.__mro__:
        if name in vars(klass):
            value = vars(klass)[name]
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            doc = getattr(value, "__doc__", None)
            if doc and doc.strip():
                return inspect.cleandoc(doc)
    return None


def missing_docstrings() -> list[str]:
    """Public names, and public methods of public classes, without a docstring."""
    out = []
    for name, obj in all_public_names().items():
        if own_docstring(obj) is None:
            out.append(f"{name} has no docstring")
        if inspect.isclass(obj):
            for member in public_members(obj):
                if member_docstring(obj, member) is None:
                    out.append(f"{name}.{member} has no docstring")
    return out
