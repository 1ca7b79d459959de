"""MkDocs hooks for the odefit site (registered in mkdocs.yml under `hooks:`).

- `on_config`: runs the examples gallery (docs/_tools/gallery.py) if it is out of
  date — fast mode by default, the full mode with `ODEFIT_DOCS_GALLERY=full` — and
  adds one navigation entry per example.
- `on_files`: adds the generated gallery pages and figures to the site, and
  MathJax (from the `django-static-mathjax` package of the `docs` extra) under
  `_static/mathjax/`, so that the maths renders with no network.
- `on_pre_build`: checks that every public name has an API entry and a docstring.

Problems are logged as warnings, so a strict build (`strict: true`) fails and names
what is wrong.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path

from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.plugins.odefit")
_HERE = Path(__file__).resolve().parent


def _load(name: str):
    module_name = f"odefit_docs_tools.{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, _HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


gallery = _load("gallery")
api_coverage = _load("api_coverage")

_manifest: dict = {"examples": {}, "order": []}


def on_config(config):
    global _manifest
    mode = os.environ.get("ODEFIT_DOCS_GALLERY", "smoke")
    if mode not in gallery.MODES:
        log.warning(
            f"ODEFIT_DOCS_GALLERY must be one of {gallery.MODES}, got {mode!r}; "
            "using 'smoke'."
        )
        mode = "smoke"
    _manifest, errors = gallery.build(mode, log=log.info)
    for error in errors:
        log.warning(f"examples gallery: {error}")
    for item in config["nav"] or []:
        if isinstance(item, dict) and "Examples" in item:
            section = item["Examples"]
            # Keep only the hand-written entries (`mkdocs serve` may call this
            # hook again on the same config), then add one per example.
            section[:] = [
                e
                for e in section
                if not (
                    isinstance(e, dict)
                    and any(
                        str(v).startswith("examples/") and v != "examples/index.md"
                        for v in e.values()
                    )
                )
            ]
            for name in _manifest["order"]:
                entry = _manifest["examples"][name]
                section.append({entry["title"]: f"examples/{name}.md"})
    return config


# MathJax 3's browser build, served by the site itself: the combined component the
# pages load, and what it loads on demand (fonts, TeX extensions, menu, a11y).
MATHJAX_PACKAGE = "django-static-mathjax"
MATHJAX_PARTS = (
    "tex-mml-chtml.js",
    "input/",
    "output/chtml/",
    "ui/",
    "a11y/",
    "sre/",
    "adaptors/",
)


def mathjax_root() -> Path | None:
    """The folder of MathJax's `es5` build in the installed package, if any."""
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        root = Path(location) / "static" / "mathjax" / "es5"
        if (root / "tex-mml-chtml.js").is_file():
            return root
    return None


def _add_mathjax(files, config) -> None:
    root = mathjax_root()
    if root is None:
        log.warning(
            "MathJax is not installed, so the maths would render as raw TeX: "
            f"pip install -e '.[docs]' (it brings {MATHJAX_PACKAGE})."
        )
        return
    sources = [(root.parent / "LICENSE", "_static/mathjax/LICENSE")]
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_file() and relative.startswith(MATHJAX_PARTS):
            sources.append((path, f"_static/mathjax/{relative}"))
    for path, uri in sources:
        existing = files.get_file_from_path(uri)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, uri, abs_src_path=str(path)))


def on_files(files, config):
    _add_mathjax(files, config)
    dest = gallery.DEST
    generated = ["index.md"]
    for name in _manifest["order"]:
        generated.append(f"{name}.md")
        for figure in _manifest["examples"][name].get("figures", []):
            if (dest / figure).is_file():
                generated.append(figure)
    for filename in generated:
        uri = f"examples/{filename}"
        existing = files.get_file_from_path(uri)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, uri, abs_src_path=str(dest / filename)))
    return files


def on_pre_build(config):
    try:
        problems = (
            api_coverage.missing_entries()
            + api_coverage.stale_entries()
            + api_coverage.missing_docstrings()
        )
    except Exception as e:  # an import error in odefit itself
        problems = [f"could not check the API reference: {type(e).__name__}: {e}"]
    for problem in problems:
        log.warning(f"API reference: {problem}")
