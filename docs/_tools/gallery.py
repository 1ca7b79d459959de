"""Builds the examples gallery by running every script in examples/.

Each `examples/<name>.py` is run as a user would run it, in its own process:
`python examples/<name>.py --smoke` in the fast mode (CI, local builds) or
`python examples/<name>.py` in the full mode (release builds). What it prints to
stdout and the figures it saves to `examples/output/<name>.png` (or several,
`examples/output/<name>_<part>.png`) go into a page
`examples/<name>.md` with the script's source; `examples/index.md` lists them all.

The pages are written to build/docs-gallery/ (git-ignored) and added to the site by
docs/_tools/hooks.py. A script that fails, or saves no figure, fails the build.
Results are cached: a script is only run again when its source, the library's
source or the mode changed.

Usage (from the repository root):

    python docs/_tools/gallery.py            # fast mode
    python docs/_tools/gallery.py --full     # full mode, for a release build
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import dataclasses
import datetime
import fcntl
import hashlib
import inspect
import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
OUTPUT = EXAMPLES / "output"
DEST = ROOT / "build" / "docs-gallery"
MANIFEST = DEST / "manifest.json"
MODES = ("smoke", "full")
TIMEOUT = {"smoke": 300.0, "full": 4 * 3600.0}


@dataclasses.dataclass
class Record:
    name: str
    title: str
    mode: str
    command: str
    key: str
    returncode: int
    seconds: float
    stdout: str
    stderr: str
    figures: list[str]
    error: str | None = None
    machine: str | None = None


def discover(examples: Path = EXAMPLES) -> list[Path]:
    """Every runnable example: `examples/*.py`, except names starting with `_`."""
    return sorted(p for p in examples.glob("*.py") if not p.name.startswith("_"))


def _library_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted((ROOT / "src" / "odefit").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_key(script: Path, mode: str, library: str) -> str:
    digest = hashlib.sha256(script.read_bytes())
    digest.update(f"{mode}|{library}".encode())
    return digest.hexdigest()


# Words written in capitals in titles made from file names.
ACRONYMS = {"bvp": "BVP", "ivp": "IVP", "ode": "ODE", "odes": "ODEs", "pinn": "PINN"}


def split_docstring(script: Path) -> tuple[str, str]:
    """The page title and the script's module docstring. The title is the
    script's `TITLE = "..."` if it defines one, else its name made readable
    (`neural_ode.py` -> "Neural ODE")."""
    tree = ast.parse(script.read_text(encoding="utf-8"))
    doc = ast.get_docstring(tree) or ""
    title = None
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and [getattr(t, "id", None) for t in node.targets] == ["TITLE"]
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            title = node.value.value.strip()
    if not title:
        words = [ACRONYMS.get(w, w) for w in script.stem.split("_") if w]
        title = " ".join(words) or script.stem
        title = title[0].upper() + title[1:]
    return title, inspect.cleandoc(doc)


def command(script: Path, mode: str) -> list[str]:
    args = [sys.executable, script.relative_to(ROOT).as_posix()]
    return args + ["--smoke"] if mode == "smoke" else args


def figures_of(name: str, folder: Path, others: set[str]) -> list[Path]:
    """`<name>.png` and `<name>_<part>.png` in `folder`, less the figures of other
    examples whose names start with `<name>_`."""
    found = [folder / f"{name}.png"] + sorted(folder.glob(f"{name}_*.png"))
    longer = [o for o in others if o != name and o.startswith(f"{name}_")]
    return [
        p
        for p in found
        if p.is_file()
        and not any(p.stem == o or p.stem.startswith(f"{o}_") for o in longer)
    ]


def run_example(
    script: Path, mode: str, key: str, others: set[str], dest: Path = DEST
) -> Record:
    """Runs one example and copies its figures to `dest`."""
    name = script.stem
    # Never show a figure left by an earlier run.
    for old in figures_of(name, OUTPUT, others) + figures_of(name, dest, others):
        old.unlink(missing_ok=True)
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1", TQDM_DISABLE="1")
    cmd = command(script, mode)
    shown = " ".join(["python", *cmd[1:]])
    tic = time.perf_counter()
    error = None
    try:
        proc = subprocess.run(
            cmd,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT[mode],
            stdin=subprocess.DEVNULL,
        )
        returncode, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as e:
        returncode = -1
        stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else e.stdout or ""
        stderr = e.stderr.decode() if isinstance(e.stderr, bytes) else e.stderr or ""
        error = f"`{shown}` did not finish within {TIMEOUT[mode]:.0f} s"
    seconds = time.perf_counter() - tic
    if error is None and returncode != 0:
        error = f"`{shown}` exited with status {returncode}"
    figures = [p for p in figures_of(name, OUTPUT, others) if p.stat().st_size > 0]
    if error is None and not figures:
        error = (
            f"`{shown}` saved no figure: every example must save "
            f"examples/output/{name}.png (or {name}_<part>.png)"
        )
    for figure in figures:
        shutil.copyfile(figure, dest / figure.name)
    title, _ = split_docstring(script)
    return Record(
        name=name,
        title=title,
        mode=mode,
        command=shown,
        key=key,
        returncode=returncode,
        seconds=seconds,
        stdout=stdout,
        stderr=stderr,
        figures=[p.name for p in figures],
        error=error,
    )


def _fence(text: str, lang: str = "text", attrs: str = "") -> str:
    """A fenced block that survives backticks inside `text`."""
    ticks = "```"
    while ticks in text:
        ticks += "`"
    head = f"{ticks}{lang}" + (f" {attrs}" if attrs else "")
    return f"{head}\n{text.rstrip()}\n{ticks}"


def render_page(script: Path, record: Record, machine: str) -> str:
    title, description = split_docstring(script)
    source = script.read_text(encoding="utf-8")
    path = script.relative_to(ROOT).as_posix()
    if record.mode == "smoke":
        mode_note = (
            f"The output below comes from the fast run `{record.command}` that the "
            "site's continuous-integration build makes: fewer steps, so the error is "
            f"larger than a full run's. Run `python {path}` for the real thing."
        )
    else:
        mode_note = f"The output below comes from the full run `{record.command}`."
    parts = [
        f"# {title}",
        "",
        description,
        "",
        f"Run it from the repository root: `python {path}` (add `--smoke` for a run "
        "of a few seconds). It prints its error against a classical reference and "
        "its wall time, and saves "
        + ", ".join(f"`examples/output/{f}`" for f in record.figures)
        + ".",
        "",
        '!!! info "Where these numbers come from"',
        "",
        textwrap.indent(
            f"{mode_note} Generated {machine}; the run took "
            f"{record.seconds:.1f} s including start-up and compilation.",
            "    ",
        ),
        "",
        "## Figure" if len(record.figures) == 1 else "## Figures",
        "",
        *[f"[![{f}, saved by {path}]({f})]({f})\n" for f in record.figures],
        "Click a figure for full size.",
        "",
        "## Output",
        "",
        _fence(record.stdout.strip() or "(the script printed nothing)"),
        "",
        "## Source",
        "",
        _fence(source, "python", f'linenums="1" title="{path}"'),
        "",
    ]
    return "\n".join(parts)


def render_index(scripts: list[Path], records: dict[str, Record]) -> str:
    lines = [
        "# Examples",
        "",
        "Every script in the repository's `examples/` folder, run when this site was "
        "built: its figure, what it printed and its source. Each script has a "
        "`main(**hyperparameters)` function whose defaults are the real run and a "
        "`--smoke` flag for a quick check.",
        "",
    ]
    if not scripts:
        lines.append("There are no examples yet.")
    for script in scripts:
        record = records[script.stem]
        _, description = split_docstring(script)
        summary = description.split("\n\n", 1)[0].replace("\n", " ")
        lines += [
            f"## [{record.title}]({script.stem}.md)",
            "",
            f"[![{record.title}]({record.figures[0]}){{ width=480 loading=lazy }}]"
            f"({script.stem}.md)"
            if record.figures
            else "",
            "",
            summary,
            "",
        ]
    return "\n".join(lines) + "\n"


def _machine() -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    return (
        f"on {now} on {platform.system()} {platform.machine()} with "
        f"{os.cpu_count()} CPU cores (Python {platform.python_version()})"
    )


def load_manifest() -> dict:
    try:
        return json.loads(MANIFEST.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"examples": {}}


def build(
    mode: str = "smoke",
    *,
    jobs: int | None = None,
    force: bool = False,
    log=print,
) -> tuple[dict, list[str]]:
    """Runs what is out of date and writes the pages. Returns the manifest and a
    list of error messages (empty when every example ran and saved its figure)."""
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}.")
    DEST.mkdir(parents=True, exist_ok=True)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    # One gallery build at a time per checkout (e.g. docs/build.sh while the test
    # suite builds the site): they share build/docs-gallery and examples/output.
    with open(DEST.parent / "docs-gallery.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build(mode, jobs=jobs, force=force, log=log)


def _build(mode: str, *, jobs: int | None, force: bool, log) -> tuple[dict, list[str]]:
    scripts = discover()
    library = _library_hash()
    old = load_manifest().get("examples", {})
    records: dict[str, Record] = {}
    todo = []
    stems = {s.stem for s in scripts}
    for script in scripts:
        key = cache_key(script, mode, library)
        cached = old.get(script.stem)
        if (
            not force
            and cached is not None
            and cached.get("key") == key
            and cached.get("error") is None
            and cached.get("figures")
            and all((DEST / f).is_file() for f in cached["figures"])
        ):
            try:
                records[script.stem] = Record(**cached)
                continue
            except TypeError:  # written by an older version of this script
                pass
        todo.append((script, key))
    if todo:
        jobs = jobs or min(len(todo), max(os.cpu_count() or 1, 1), 4)
        log(
            f"gallery: running {len(todo)} example(s) in {mode} mode with {jobs} "
            f"process(es): {', '.join(s.stem for s, _ in todo)}"
        )
        with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
            futures = {
                pool.submit(run_example, script, mode, key, stems): script
                for script, key in todo
            }
            for future in concurrent.futures.as_completed(futures):
                record = future.result()
                records[record.name] = record
                status = "failed" if record.error else "ok"
                log(f"gallery: {record.name}: {status} in {record.seconds:.1f} s")
    # Pages are cheap: rendered every time, from fresh or cached runs.
    machine = _machine()
    for script in scripts:
        record = records[script.stem]
        record.title = split_docstring(script)[0]
        if record.machine is None:  # a fresh run
            record.machine = machine
        (DEST / f"{script.stem}.md").write_text(
            render_page(script, record, record.machine), encoding="utf-8"
        )
    (DEST / "index.md").write_text(render_index(scripts, records), encoding="utf-8")
    # Drop pages and figures of examples that no longer exist.
    names = {s.stem for s in scripts}
    keep = {"index.md"} | {f"{n}.md" for n in names}
    for name in names:
        keep.update(records[name].figures)
    for path in DEST.iterdir():
        if path.suffix in (".md", ".png") and path.name not in keep:
            path.unlink()
    manifest = {
        "mode": mode,
        "examples": {name: dataclasses.asdict(records[name]) for name in sorted(names)},
        "order": [s.stem for s in scripts],
    }
    MANIFEST.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    errors = []
    for script in scripts:
        record = records[script.stem]
        if record.error:
            tail = "\n".join(record.stderr.strip().splitlines()[-15:])
            errors.append(f"{record.error}.\n{tail}".rstrip())
    return manifest, errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--full", action="store_true", help="run the full examples (release build)"
    )
    parser.add_argument("--jobs", type=int, default=None, help="parallel processes")
    parser.add_argument("--force", action="store_true", help="ignore the cache")
    args = parser.parse_args(argv)
    mode = "full" if args.full else "smoke"
    _, errors = build(mode, jobs=args.jobs, force=args.force)
    for error in errors:
        print(f"gallery: ERROR: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
