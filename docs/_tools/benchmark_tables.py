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


README = ROOT / "benchmarks" / "README.md"


class Missing(Exception):
    pass


def _load(name: str) -> dict:
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        raise Missing(f"{path.relative_to(ROOT).as_posix()}")
    return json.loads(path.read_text(encoding="utf-8"))


def _not_measured(what: str, command: str) -> str:
    return (
        '!!! warning "Not measured in this checkout"\n\n'
        f"    `{what}` is not in the repository, so there is no table here. "
        f"Run `{command}` to produce it."
    )


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


def ensemble(data: dict) -> str:
    lines = [
        "| run | wall time (s) | of which compiling (s) | speed-up | "
        "member-steps/s | mean relative L2 | max difference vs sequential |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in data["runs"].items():
        lines.append(
            f"| {name} | {r['wall_s']:.1f} | {r['compile_s']:.1f} | "
            f"{r['speedup_vs_sequential']:.2f} | {r['member_steps_per_s']:.0f} | "
            f"{_number(r['relative_l2_mean'])} | "
            f"{_number(r['max_member_error_difference_vs_sequential'])} |"
        )
    machine = data.get("machine", {})
    if isinstance(machine, dict):
        machine = ", ".join(f"{k} {v}" for k, v in machine.items())
    lines += [
        "",
        f"{data['members']} members, {data['steps']} steps each, width "
        f"{data['width']}, {data['points']} points per step. Command: "
        f"`{data.get('command', 'python benchmarks/ensemble.py')}`. Machine: "
        f"{machine}.",
    ]
    return "\n".join(lines)


def _tex(x: float) -> str:
    mantissa, exponent = f"{x:.1e}".split("e")
    return rf"${mantissa} \times 10^{{{int(exponent)}}}$"


def _provenance(data: dict) -> str:
    load = data.get("load_average_start"), data.get("load_average_end")
    loads = " → ".join("/".join(f"{x:g}" for x in v) for v in load if v) or "?"
    versions = ", ".join(f"{k} {v}" for k, v in data.get("versions", {}).items())
    return (
        f"Measured {data['date']} with `{data['command']}` ({versions}); "
        f"load average (1/5/15 min) {loads}."
    )


_STAGE_NAMES = {
    "1000 optax.lbfgs() steps, Grid(256)": "1000 `optax.lbfgs()` steps, `Grid(256)`",
    "1000 odefit.LBFGS() steps": "1000 `odefit.LBFGS()` steps (default `Grid(256)`)",
    "200 Gauss-Newton steps": "200 Gauss–Newton steps",
    "200 Levenberg-Marquardt steps": "200 Levenberg–Marquardt steps",
}


def accuracy_page_last_stage() -> str:
    """docs/accuracy.md's first table, from results/accuracy_page.json."""
    try:
        data = _load("accuracy_page")
    except Missing as e:
        return _not_measured(str(e), "python benchmarks/accuracy_page.py")
    lines = [
        "| last stage, after the same 5000 Adam steps | relative L2 error | "
        "wall time | stopped |",
        "|---|---|---|---|",
    ]
    for name, row in data["last_stage"].items():
        reason = row["stop_reason"].split(":")[0].split(" at ")[0]
        lines.append(
            f"| {_STAGE_NAMES.get(name, name)} | {_tex(row['relative_l2'])} | "
            f"{row['wall_time_s']:.1f} s | {reason}, {row['steps']} steps |"
        )
    return "\n".join(lines + ["", _provenance(data)])


def accuracy_page_long_horizon() -> str:
    """docs/accuracy.md's long-horizon table, from results/accuracy_page.json."""
    try:
        data = _load("accuracy_page")
    except Missing as e:
        return _not_measured(str(e), "python benchmarks/accuracy_page.py")
    rows = data["long_horizon"]
    marching = rows["fit_marching"]
    lines = [
        "| method, each with 1000 Adam + 50 Levenberg–Marquardt steps | "
        "relative L2 error | wall time |",
        "|---|---|---|",
        f"| one network over $[0, 20]$ | {_tex(rows['one network']['relative_l2'])} "
        f"| {rows['one network']['wall_time_s']:.0f} s |",
        f"| [`fit_marching`][odefit.fit_marching], {marching['windows']} windows "
        f"chosen automatically | {_tex(marching['relative_l2'])} | "
        f"{marching['wall_time_s']:.0f} s |",
        "| its [`error_estimate`][odefit.error_estimate] (no reference used) | "
        f"{_tex(rows['error_estimate of the marched fit']['relative_l2'])} | |",
    ]
    return "\n".join(lines + ["", _provenance(data)])


def torchlike_summary() -> str:
    """Per case of `python -m odefit.torchlike`: how many quantities, the largest
    difference from PyTorch (results/torchlike.json)."""
    try:
        data = _load("torchlike")
    except Missing as e:
        return _not_measured(str(e), "python -m odefit.torchlike --json PATH")
    cases: dict[str, list[float]] = {}
    for row in data["rows"]:
        cases.setdefault(row["case"], []).append(row["difference"])
    lines = ["| case | quantities | max \\|odefit − PyTorch\\| |", "|---|---|---|"]
    for case, diffs in cases.items():
        lines.append(f"| {case} | {len(diffs)} | {max(diffs):.1e} |")
    every = [d for diffs in cases.values() for d in diffs]
    lines.append(
        f"| **all** | **{len(every)}** | **{max(every):.1e}** (tolerance "
        f"{data['tolerance']:g}) |"
    )
    return "\n".join(lines + ["", _provenance(data)])


def torchlike_threads() -> str:
    """The threaded-training observations of results/torchlike.json."""
    try:
        data = _load("torchlike")
    except Missing as e:
        return _not_measured(str(e), "python -m odefit.torchlike --json PATH")
    lines = ["| threaded training on shared weights | value | meaning |"]
    lines.append("|---|---|---|")
    for o in data["threads"]:
        value = o["value"]
        shown = f"{value:g}" if float(value).is_integer() else f"{value:.1e}"
        if o["exact"]:
            shown += " (exact)"
        name = o["name"].replace("|", "\\|")
        note = o["note"].replace("|", "\\|")
        lines.append(f"| {name} | {shown} | {note} |")
    return "\n".join(lines + ["", _provenance(data)])


# Result files whose name starts with a key get that key's table.
def custom_terms(data: dict) -> str:
    lines = [
        "| energy term's weight | median relative L2 | min – max | "
        "median max energy drift |",
        "|---|---|---|---|",
    ]
    for weight, row in data["summary_by_weight"].items():
        low, high = row["min_max_relative_l2"]
        name = "0 (no term)" if float(weight) == 0 else f"{float(weight):g}"
        lines.append(
            f"| {name} | {_number(row['median_relative_l2'])} | {_number(low)} – "
            f"{_number(high)} | {_number(row['median_max_energy_drift'])} |"
        )
    runs = data["runs"]
    lines += [
        "",
        f"{data['recipe']}; {data['dtype']}; {len(runs)} runs "
        f"({data['repeats']} seeds). Measured {data['date'][:10]}, "
        f"{data['machine']}, load average {data['load_average'][0]:.1f}; "
        f"`{data['command']}`.",
    ]
    return "\n".join(lines)


def lapack_threads(data: dict) -> str:
    median, spread = data["median_seconds"], data["min_max_seconds"]
    lines = ["| BLAS threads | seconds (median) | min – max |", "|---|---|---|"]
    names = {
        "odefit": "odefit's limit (plain `python script.py`)",
        "OMP_NUM_THREADS=1": "`OMP_NUM_THREADS=1` as well",
        "unlimited": "no limit (odefit before)",
    }
    for key, label in names.items():
        low, high = spread[key]
        lines.append(f"| {label} | {median[key]:.1f} | {low:.1f} – {high:.1f} |")
    load = data["load_average_1min"]
    lines += [
        "",
        f"{data['what']}. No limit is **{data['unlimited_over_odefit']:.1f}x** "
        f"slower. Measured {data['date'][:10]} on {data['machine']} at load "
        f"average {load['min']:.1f} – {load['max']:.1f}; `{data['command']}`.",
    ]
    return "\n".join(lines)


def gpu(data: dict) -> str:
    """`benchmarks/gpu.py`'s rows: steps/s against PyTorch on the same GPU, the
    ensemble against sequential fits, the examples' wall times."""
    out = []
    versus = data.get("versus_pytorch", {})
    frameworks = list(
        dict.fromkeys(
            name
            for row in ("oscillator", "large")
            for name in versus.get(row, {}).get("results", {})
        )
    )
    if frameworks:
        out += [
            "| oscillator, width | points | "
            + " | ".join(f"{f} steps/s" for f in frameworks)
            + " |",
            "|---|---|" + "---|" * len(frameworks),
        ]
        for row in ("oscillator", "large"):
            r = versus[row]
            rates = [r["results"].get(f, {}).get("steps_per_s") for f in frameworks]
            cells = [f"{x:.0f}" if x is not None else "failed" for x in rates]
            out.append(
                f"| {r['width']} | {r['points']:,} | " + " | ".join(cells) + " |"
            )
        out.append("")
    if "ensemble" in data:
        out += [ensemble(data["ensemble"]), ""]
    if data.get("examples"):
        out += ["| example | wall time (s), compilation included |", "|---|---|"]
        for name, r in data["examples"].items():
            out.append(f"| {name} | {r['process_wall_s']:.1f} |")
        out.append("")
    gpus = ", ".join(data.get("gpus", [])) or "no GPU (a dry run)"
    out.append(f"Devices: {gpus}. " + _provenance(data))
    return "\n".join(out)


def calibration(data: dict) -> str:
    lines = [
        "| rate (true) | coverage, PINN Laplace | coverage, classical | "
        "width PINN / classical (median) | RMS error PINN | RMS error classical |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in data["parameters"].items():
        lines.append(
            f"| {name} ({r['true']:g}) | {r['coverage_pinn']:.3f} | "
            f"{r['coverage_classical']:.3f} | {r['width_ratio_median']:.2f} | "
            f"{_number(r['rmse_pinn'])} | {_number(r['rmse_classical'])} |"
        )
    se = next(iter(data["parameters"].values()))["coverage_standard_error"]
    lines += [
        "",
        f"{data['seeds_used']} of {data['seeds']} data sets (nominal level "
        f"{data['level']:g}; a coverage's standard error is {se:.3f}). "
        f"{data['pinn']}. Classical: {data['classical']}. Command: "
        f"`{data.get('command', 'python benchmarks/calibration.py')}`.",
    ]
    return "\n".join(lines)


RENDERERS = {
    "custom_terms": custom_terms,
    "lapack_threads": lapack_threads,
    "fit_overhead": fit_overhead,
    "ensemble": ensemble,
    "gpu": gpu,
    "calibration": calibration,
}


def render(name: str, command: str | None = None) -> str:
    """The table for `benchmarks/results/<name>.json` (a notice if it is missing)."""
    try:
        data = _load(name)
    except Missing as e:
        return _not_measured(str(e), command or f"python benchmarks/{name}.py")
    renderer = next(
        (f for prefix, f in RENDERERS.items() if name.startswith(prefix)), generic
    )
    return renderer(data)


def render_first(names: list[str], command: str) -> str:
    """The table of the first of `names` that has a result file."""
    for name in names:
        if (RESULTS / f"{name}.json").is_file():
            return render(name)
    return _not_measured(f"benchmarks/results/{names[0]}.json", command)


def readme_section(
    section: str,
    command: str,
    script: str | None = None,
    results: tuple[str, ...] = (),
) -> str:
    """The block between `<!-- section:start -->` and `<!-- section:end -->` in
    benchmarks/README.md, where the benchmark scripts write their tables.

    Without that block, the table is made by the benchmark script's own
    `markdown(results)` from the first of its committed `results` JSON files
    (the same function that writes the README block); failing that, a notice.
    """
    start, end = f"<!-- {section}:start -->", f"<!-- {section}:end -->"
    text = README.read_text(encoding="utf-8") if README.is_file() else ""
    if start in text and end in text:
        return text[text.index(start) + len(start) : text.index(end)].strip()
    for name in results:
        path = RESULTS / f"{name}.json"
        if script is not None and path.is_file():
            try:
                markdown = _load_script(script).markdown
                data = json.loads(path.read_text(encoding="utf-8"))
                return markdown(data).strip()
            except BaseException as e:  # the script may exit without its extras
                return _not_measured(
                    f"benchmarks/README.md ({section} section)",
                    command,
                ) + (
                    f"\n\n    (benchmarks/{script}.py could not render "
                    f"{path.name}: {type(e).__name__}: {e})"
                )
    return _not_measured(f"benchmarks/README.md ({section} section)", command)


def _load_script(script: str):
    import importlib.util
    import sys

    name = f"odefit_benchmarks_{script}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, ROOT / "benchmarks" / f"{script}.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def names() -> list[str]:
    return sorted(p.stem for p in RESULTS.glob("*.json"))


# -- the ODE leaderboard against peer libraries (benchmarks/peers/) ----------------

PEER_ENTRIES = (
    ("odefit", "default", "odefit, `fit` defaults"),
    ("odefit", "recipe32", "odefit, recipe, float32"),
    ("odefit", "recipe64", "odefit, recipe, float64"),
    ("jinns", "tutorial", "jinns"),
    ("deepxde", "tutorial", "DeepXDE"),
    ("neurodiffeq", "tutorial", "NeuroDiffEq"),
)
PEERS = ("jinns", "deepxde", "neurodiffeq")


def _seconds(x) -> str:
    return "—" if x is None else f"{x:.1f} s"


def _peer_rows(data: dict) -> dict:
    out: dict = {}
    for row in data["rows"]:
        out.setdefault(row["problem"], {})[(row["library"], row["mode"])] = row
    return out


def _odefit_best(rows: dict):
    """The odefit mode with the lowest error on a problem (its row)."""
    ok = [
        rows[k]
        for k in rows
        if k[0] == "odefit" and rows[k].get("best_error") is not None
    ]
    return min(ok, key=lambda r: r["best_error"]) if ok else None


def peers_verdicts(data: dict) -> list[dict]:
    """Per problem: does odefit's best mode beat every peer's error, and reach
    1e-3 before every peer that reaches it?"""
    out = []
    for name, rows in _peer_rows(data).items():
        best = _odefit_best(rows)
        lower, sooner, notes = True, True, []
        for peer in PEERS:
            row = rows.get((peer, "tutorial"))
            if row is None or row.get("best_error") is None:
                continue
            if best is None or row["best_error"] <= best["best_error"]:
                lower = False
                notes.append(f"{peer} reaches a lower error")
            peer_t = row.get("time_to_1e-03")
            if peer_t is not None:
                ours = None if best is None else best.get("time_to_1e-03")
                if ours is None or ours >= peer_t:
                    sooner = False
                    notes.append(f"{peer} reaches 1e-3 first")
        out.append(
            {
                "problem": name,
                "best_mode": None if best is None else best["mode"],
                "lower": lower,
                "sooner": sooner,
                "notes": notes,
            }
        )
    return out


def _cell(row) -> str:
    if row is None:
        return "not run"
    if row["status"] == "not expressed":
        return "not expressed"
    if row["status"] != "ok":
        return "failed"
    return _number(row["best_error"])


def peers(data: dict) -> str:
    by_problem = _peer_rows(data)
    head = "| problem | kind | " + " | ".join(label for *_, label in PEER_ENTRIES)
    lines = [head + " |", "|---|---|" + "---|" * len(PEER_ENTRIES)]
    for name, rows in by_problem.items():
        kind = data["problems"][name]["kind"]
        best = _odefit_best(rows)
        cells = []
        for library, mode, _ in PEER_ENTRIES:
            row = rows.get((library, mode))
            cell = _cell(row)
            if best is not None and row is best:
                cell = f"**{cell}**"
            cells.append(cell)
        lines.append(f"| {name} | {kind} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Best relative $L^2$ error over the run against the reference (lower is "
        "better; bold: odefit's best mode).",
    ]
    return "\n".join(lines)


def peers_problem(data: dict, name: str, figure: bool = False) -> str:
    """One problem's table: best error, time to 1e-2 and 1e-3, steps/s, and why
    a peer did not run; with `figure`, then its error-vs-time figure (a page
    that links the figure itself lets MkDocs resolve the path)."""
    rows = _peer_rows(data).get(name)
    spec = data["problems"][name]
    if not rows:
        return f"*{spec['statement']}*\n\nNo run recorded for this problem."
    lines = [
        f"*{spec['statement']}*",
        "",
        "| library | precision | best rel. L2 | final | to 1e-2 | to 1e-3 "
        "| steps/s | steps | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for library, mode, label in PEER_ENTRIES:
        row = rows.get((library, mode))
        if row is None:
            continue
        if row["status"] != "ok":
            reason = row.get("reason", "").strip().splitlines()
            reason = reason[-1] if reason else ""
            what = "not expressed" if row["status"] == "not expressed" else "failed"
            lines.append(
                f"| {label} | | — | — | — | — | — | — | {what}: {reason[:300]} |"
            )
            continue
        settings = row.get("settings", {})
        note = []
        if "parameter_error" in row:
            note.append(
                f"parameters off by {_number(row['parameter_error'])} (max rel.)"
            )
        lines.append(
            f"| {label} | {settings.get('precision', '')} "
            f"| {_number(row['best_error'])} | {_number(row['final_error'])} "
            f"| {_seconds(row.get('time_to_1e-02'))} "
            f"| {_seconds(row.get('time_to_1e-03'))} "
            f"| {_number(row['steps_per_s'])} | {row['steps']:,} "
            f"| {'; '.join(note)} |"
        )
    if figure:
        lines += [
            "",
            f"![Error against training time, {name}](_static/leaderboard/{name}.png)",
        ]
    return "\n".join(lines)


def peers_meta(data: dict) -> str:
    loads = [r["load_start"] for r in data["rows"] if "load_start" in r]
    versions = data.get("versions", {})
    peer_versions = data.get("peer_versions", {})
    parts = [f"odefit {versions.get('odefit', '?')} (JAX {versions.get('jax', '?')})"]
    for peer in PEERS:
        v = peer_versions.get(peer)
        if isinstance(v, dict):
            extra = ", ".join(f"{k} {x}" for k, x in v.items() if k != peer)
            parts.append(f"{peer} {v.get(peer, '?')} ({extra})")
    machine = data.get("machine", {})
    start = data.get("load_average_start") or [None]
    end = data.get("load_average_end") or [None]
    lines = [
        f"- **Measured** {data['date']}: `{data['command']}`, a budget of "
        f"{data['budget']:g} s of training per run, seed {data['seed']}.",
        "- **Versions**: " + "; ".join(parts) + ".",
        f"- **Machine**: {machine.get('cores', '?')} {machine.get('cpu', '')} cores "
        "(CPU only), shared with other work while it ran; every run "
        f"single-threaded ({data.get('threads', '')}).",
    ]
    if loads:
        lines.append(
            f"- **Load**: 1-minute load average {min(loads):.1f} – {max(loads):.1f} "
            f"at the start of the runs (start {start[0]}, end {end[0]}); times are "
            "comparable within this run only."
        )
    return "\n".join(lines)


def peers_closing(data: dict) -> str:
    verdicts = peers_verdicts(data)
    n = len(verdicts)
    lower = [v for v in verdicts if v["lower"]]
    sooner = [v for v in verdicts if v["sooner"]]
    lines = [
        f"odefit's best mode reaches a lower error than every peer on "
        f"**{len(lower)} of {n}** problems, and reaches 1e-3 before every peer "
        f"that reaches it on **{len(sooner)} of {n}**.",
    ]
    misses = [v for v in verdicts if not (v["lower"] and v["sooner"])]
    if misses:
        lines += ["", "Where not:", ""]
        for v in misses:
            lines.append(
                f"- **{v['problem']}** (odefit's best: {v['best_mode']}): "
                + "; ".join(dict.fromkeys(v["notes"]))
                + "."
            )
    return "\n".join(lines)


RENDERERS["peers"] = peers
