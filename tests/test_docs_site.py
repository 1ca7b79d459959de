"""The documentation site builds strictly and renders in a real browser; the code on
its pages runs.

The browser test builds the site with `mkdocs build --strict` (or uses the one in
`$ODEFIT_DOCS_SITE`, e.g. `site/` after `bash docs/build.sh`), serves it on
localhost and drives Debian's Chromium (`apt-get install -y chromium`) headless
through Playwright's Python package; no browser is ever downloaded. Requests that
leave localhost are blocked, so the test needs no network.

Locally the browser tests skip, saying why, when mkdocs, Playwright or Chromium is
missing. Under CI (`CI=true`) or with `ODEFIT_DOCS_REQUIRED=1` they fail instead:
a docs check that silently skips in CI checks nothing.
"""

import functools
import http.server
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CHROMIUM = os.environ.get("ODEFIT_CHROMIUM", "/usr/bin/chromium")
REQUIRED = (
    os.environ.get("CI", "").lower() in ("1", "true", "yes")
    or os.environ.get("ODEFIT_DOCS_REQUIRED") == "1"
)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 30_000


def _require(ok: bool, reason: str) -> None:
    if ok:
        return
    if REQUIRED:
        pytest.fail(
            f"{reason} (the docs tests are required here: CI or "
            "ODEFIT_DOCS_REQUIRED=1 is set)"
        )
    pytest.skip(reason)


def _has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _need_mkdocs() -> None:
    _require(
        all(_has_module(m) for m in ("mkdocs", "material", "mkdocstrings_handlers")),
        "the docs toolchain is not installed: pip install -e '.[docs]'",
    )


def _need_browser() -> None:
    _need_mkdocs()
    _require(
        _has_module("playwright"),
        "Playwright's Python package is not installed: pip install -e '.[docs]'",
    )
    _require(
        os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK),
        f"no Chromium at {CHROMIUM}: apt-get install -y chromium "
        "(or point ODEFIT_CHROMIUM at one)",
    )


# -- the site, built once per session --------------------------------------------


@pytest.fixture(scope="session")
def site_dir(tmp_path_factory) -> Path:
    prebuilt = os.environ.get("ODEFIT_DOCS_SITE")
    if prebuilt:
        path = Path(prebuilt)
        assert (path / "index.html").is_file(), (
            f"ODEFIT_DOCS_SITE={prebuilt} holds no built site (no index.html)"
        )
        return path
    _need_mkdocs()
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    tic = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, (
        f"`mkdocs build --strict` failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    )
    print(f"built the site in {time.perf_counter() - tic:.1f} s")
    return out


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def server(site_dir):
    handler = functools.partial(_QuietHandler, directory=str(site_dir))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def browser_context(server):
    _need_browser()
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="odefit-chromium-")
    with sync_playwright() as p:
        # A persistent context on a fresh folder is Chromium's --user-data-dir.
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
        )
        context.set_default_timeout(TIMEOUT_MS)

        def only_localhost(route):
            host = urllib.parse.urlsplit(route.request.url).hostname
            if host in ("127.0.0.1", "localhost") or route.request.url.startswith(
                "data:"
            ):
                route.continue_()
            else:
                route.abort()

        context.route("**/*", only_localhost)
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser_context):
    page = browser_context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    page.close()
    assert not errors, f"JavaScript errors on {page.url}: {errors}"


def _open(page, server, path):
    response = page.goto(f"{server}/{path}", wait_until="load")
    assert response is not None and response.ok, f"GET /{path}: {response}"
    return page


def _visible_texts(page, selector):
    # Headings end with their permalink, "¶".
    return [
        loc.inner_text().strip().rstrip("¶").strip()
        for loc in page.locator(selector).all()
        if loc.is_visible()
    ]


def _assert_image_loaded(page, img, what):
    img.scroll_into_view_if_needed()
    # `complete` turns true when the image loaded or failed to; a failed one has
    # no natural size.
    page.wait_for_function("img => img.complete", arg=img.element_handle())
    size = img.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    box = img.bounding_box()
    src = img.get_attribute("src") or ""
    assert size[0] > 0 and size[1] > 0, (
        f"{what}: image did not load ({src[:80]}, natural size {size})"
    )
    assert box is not None and box["width"] > 0 and box["height"] > 0, (
        f"{what}: image has no size on the page ({box})"
    )


def _gallery_example() -> str:
    names = sorted(
        p.stem for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_")
    )
    assert names, "examples/ has no example scripts to show in the gallery"
    return "exponential_decay" if "exponential_decay" in names else names[0]


# -- browser tests ---------------------------------------------------------------


def test_home_page(page, server):
    _open(page, server, "")
    assert page.title().startswith("odefit")
    h1 = _visible_texts(page, "article h1")
    assert h1 and "odefit" in h1[0].lower(), h1
    assert len(_visible_texts(page, "article h2")) >= 3
    code = _visible_texts(page, "article pre code")
    assert code and any("odefit.fit" in c for c in code), code
    # The navigation reaches the getting-started page.
    page.get_by_role("link", name="Getting started").first.click()
    page.wait_for_url(re.compile(r".*/getting-started/$"))


def test_getting_started_page(page, server):
    _open(page, server, "getting-started/")
    assert _visible_texts(page, "article h1") == ["Getting started"]
    headings = _visible_texts(page, "article h2")
    for expected in ("Install", "Your first fit", "The history", "The plot"):
        assert any(expected.lower() in h.lower() for h in headings), headings
    code = _visible_texts(page, "article pre code")
    assert sum("odefit.fit(" in c for c in code) >= 1, code
    assert any("pip install" in c for c in code), code
    # The output the page's code printed when the site was built.
    assert any("relative L2 error" in c for c in code), code
    images = page.locator("article img")
    assert images.count() >= 1
    _assert_image_loaded(page, images.first, "getting-started figure")


def test_api_page(page, server):
    _open(page, server, "api/fit/")
    headings = _visible_texts(page, "article h2")
    assert any(h.startswith("odefit.fit") for h in headings), headings
    assert any("odefit.FitResult" in h for h in headings), headings
    assert page.locator("[id='odefit.fit']").count() == 1
    signature = _visible_texts(page, "article .doc-signature")
    assert any("steps" in s and "key" in s for s in signature), signature
    body = page.locator("article").inner_text()
    assert "Arguments:" in body and "Returns:" in body


def test_example_page(page, server):
    name = _gallery_example()
    _open(page, server, f"examples/{name}/")
    assert _visible_texts(page, "article h1")
    headings = _visible_texts(page, "article h2")
    assert {"Output", "Source"} <= set(headings), headings
    assert "Figure" in headings or "Figures" in headings, headings
    code = _visible_texts(page, "article pre code")
    assert any("relative" in c.lower() for c in code), code  # the printed error
    assert any("def main(" in c for c in code), code  # the source
    images = page.locator(f"article img[src*='{name}']")
    assert images.count() >= 1
    for i in range(images.count()):
        _assert_image_loaded(page, images.nth(i), f"figure of examples/{name}.py")


def test_maths_renders_offline(page, server):
    """MathJax is served by the site (no request may leave localhost here), and
    typesets the page: no raw TeX delimiters are left in the visible text."""
    loaded = []
    page.on("requestfinished", lambda request: loaded.append(request.url))
    _open(page, server, "accuracy/")
    page.wait_for_function(
        "() => window.MathJax && MathJax.startup && MathJax.startup.promise",
    )
    page.evaluate("() => MathJax.startup.promise")
    mathjax = [url for url in loaded if "mathjax" in url.lower()]
    assert any("tex-mml-chtml.js" in url for url in mathjax), loaded
    assert all(url.startswith(server) for url in mathjax), mathjax
    rendered = page.locator("article mjx-container")
    assert rendered.count() >= 5, rendered.count()
    text = page.locator("article").inner_text()
    for raw in ("$$", "\\(", "\\[", "\\times", "\\sum"):
        assert raw not in text, f"raw TeX {raw!r} visible on the accuracy page"


@pytest.mark.parametrize("query", ["LevenbergMarquardt", "relative_l2", "Observations"])
def test_search_finds_public_names(page, server, query):
    import odefit

    if not hasattr(odefit, query):
        pytest.skip(f"odefit.{query} is not a public name in this checkout")
    _open(page, server, "")
    page.locator("label.md-search__icon, .md-search__input").first.click()
    box = page.locator("input.md-search__input")
    # Typed key by key: the search reacts to key events, not to a pasted value.
    box.press_sequentially(query, delay=20)
    results = page.locator(".md-search-result__item")
    results.first.wait_for(state="visible")
    texts = [results.nth(i).inner_text() for i in range(min(results.count(), 10))]
    assert any(query.lower() in t.lower() for t in texts), texts
    meta = page.locator(".md-search-result__meta").inner_text()
    assert not meta.lower().startswith("no matching"), meta


# -- the code on the pages runs --------------------------------------------------

_FENCE_OPEN = re.compile(r"^(\s*)```\s*python\b([^`]*)$")
_FENCE_CLOSE = re.compile(r"^\s*```\s*$")
_SKIP = "<!-- docs-test: skip -->"


def page_code(page: Path) -> list[str]:
    """The page's ```python blocks in order, less those marked `<!-- docs-test:
    skip -->` (on the line before) and those executed by the build itself
    (`exec="on"`: a failure there fails `mkdocs build --strict`)."""
    blocks, current, skip, previous = [], None, False, ""
    for line in page.read_text(encoding="utf-8").splitlines():
        if current is None:
            match = _FENCE_OPEN.match(line)
            if match:
                current = []
                skip = previous.strip() == _SKIP or "exec=" in match.group(2)
            elif line.strip():
                previous = line
        elif _FENCE_CLOSE.match(line):
            if not skip:
                blocks.append(textwrap.dedent("\n".join(current)))
            current, previous = None, ""
        else:
            current.append(line)
    return blocks


def _pages_with_code() -> list[Path]:
    pages = sorted(p for p in DOCS.rglob("*.md") if "_tools" not in p.parts)
    return [p for p in pages if page_code(p)]


def test_page_code_parser(tmp_path):
    page = tmp_path / "p.md"
    page.write_text(
        "```python\na = 1\n```\n\n<!-- docs-test: skip -->\n```python\nb = 2\n```\n"
        '\n```python exec="on"\nc = 3\n```\n\n```python\nd = a\n```\n'
    )
    assert page_code(page) == ["a = 1", "d = a"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "page", _pages_with_code(), ids=lambda p: p.relative_to(DOCS).as_posix()
)
def test_page_code_runs(page, tmp_path):
    """Each page's code blocks, run in order in one fresh process (with JAX's
    default configuration, as a reader would), succeed."""
    code = "\n\n".join(page_code(page))
    script = tmp_path / "page.py"
    script.write_text(code, encoding="utf-8")
    env = dict(os.environ, MPLBACKEND="Agg", TQDM_DISABLE="1")
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, (
        f"the code on {page.relative_to(ROOT)} failed:\n{proc.stderr[-4000:]}"
    )


def executed_blocks(page: Path) -> list[str]:
    """The ```python exec="on" blocks of a page, in order (run by the build)."""
    blocks, current = [], None
    for line in page.read_text(encoding="utf-8").splitlines():
        if current is None:
            match = _FENCE_OPEN.match(line)
            if match and 'exec="on"' in match.group(2):
                current = []
        elif _FENCE_CLOSE.match(line):
            blocks.append(textwrap.dedent("\n".join(current)))
            current = None
        else:
            current.append(line)
    return blocks


_CHECK_ERRORS = """
import contextlib, io, json, sys
blocks = json.loads(sys.stdin.read())
namespace = {"__name__": "__main__"}
silent = []
for i, block in enumerate(blocks):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, f"<block {i}>", "exec"), namespace)
    if "except" in block and "Error: " not in out.getvalue():
        silent.append(block)
print(json.dumps(silent))
"""


@pytest.mark.slow
def test_troubleshooting_messages_are_real():
    """Every try/except block on the troubleshooting page shows an error message:
    if odefit stopped raising, the page would silently show nothing."""
    import json

    blocks = executed_blocks(DOCS / "troubleshooting.md")
    assert sum("except" in b for b in blocks) >= 6
    env = dict(os.environ, MPLBACKEND="Agg", TQDM_DISABLE="1")
    proc = subprocess.run(
        [sys.executable, "-c", _CHECK_ERRORS],
        input=json.dumps(blocks),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    silent = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not silent, "these blocks printed no error:\n\n" + "\n\n".join(silent)
