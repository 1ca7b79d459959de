"""Error-vs-training-time figures of the leaderboard, one PNG per problem, from
`benchmarks/results/peers.json` into `docs/_static/leaderboard/` (shown by
`docs/leaderboard.md`).

    python benchmarks/peers/plot.py [--results PATH] [--out DIR]
"""

import argparse
import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "peers.json"
OUT = ROOT / "docs" / "_static" / "leaderboard"

STYLE = {
    ("odefit", "default"): dict(
        color="tab:blue", ls=":", label="odefit fit defaults (f32)"
    ),
    ("odefit", "recipe32"): dict(color="tab:blue", ls="--", label="odefit recipe f32"),
    ("odefit", "recipe64"): dict(color="tab:blue", ls="-", label="odefit recipe f64"),
    ("jinns", "tutorial"): dict(color="tab:green", ls="-", label="jinns (f64)"),
    ("deepxde", "tutorial"): dict(color="tab:red", ls="-", label="DeepXDE (f32)"),
    ("neurodiffeq", "tutorial"): dict(
        color="tab:orange", ls="-", label="NeuroDiffEq (f64)"
    ),
}


def plot(data: dict, out: pathlib.Path) -> list[pathlib.Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []
    by_problem = {}
    for row in data["rows"]:
        by_problem.setdefault(row["problem"], []).append(row)
    for name, rows in by_problem.items():
        fig, ax = plt.subplots(figsize=(6.4, 3.8))
        for row in rows:
            curve = row.get("curve")
            if not curve:
                continue
            style = STYLE.get((row["library"], row["mode"]), {})
            ts = [max(t, 1e-2) for t, _, _ in curve]
            errors = [min(e, 1e3) for _, _, e in curve]
            ax.step(ts, errors, where="post", marker="o", ms=3, **style)
        ax.axhline(1e-2, color="0.7", lw=0.8)
        ax.axhline(1e-3, color="0.7", lw=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("training time (s, evaluation excluded)")
        ax.set_ylabel("relative L2 error")
        ax.set_title(f"{name} (budget {data['budget']:g} s per run)")
        ax.set_xlim(0, data["budget"] * 1.05)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
        fig.tight_layout()
        path = out / f"{name}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    data = json.loads(pathlib.Path(args.results).read_text())
    for path in plot(data, pathlib.Path(args.out)):
        print(path)


if __name__ == "__main__":
    main()
