"""Every measured figure in README.md, the docs pages and the docstrings, tied to the
result file it comes from (STYLE.md rule 24).

Tables on the docs pages are printed from `benchmarks/results/*.json` when the site
is built (`benchmark_tables.py`). Figures in prose, in README.md and in docstrings
cannot be generated, so they are listed here: each `Figure` is a sentence fragment
written as a Python f-string over the result files, and `tests/test_figures.py`
checks that the fragment, with the numbers filled in from the files, appears
verbatim (whitespace aside) in its page. When a benchmark is rerun and a number
changes, that test fails and says which sentence to update.

The same test scans the pages for anything that looks like a measurement (a
speed-up `1.3×`, a time `9 s`, an error `1.2e-4` or `$1.2 \\times 10^{-4}$`, a
percentage) outside code blocks: each must be inside a `Figure`, or inside a
phrase of `NOT_MEASURED` with the reason it is not a measurement (a setting, a
tolerance, a bound from a test). A new figure typed into a page without a result
behind it fails the test.

    python docs/_tools/figures.py      # prints every figure with its value
"""

from __future__ import annotations

import ast
import json
import re
from functools import cache
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"


# -- the result files and short names for the templates --------------------------


@cache
def results() -> dict:
    return {
        p.stem: json.loads(p.read_text(encoding="utf-8"))
        for p in sorted(RESULTS.glob("*.json"))
    }


def e(x: float, digits: int = 1) -> str:
    """1.2e-4, as the pages write it (no zero-padded exponent)."""
    mantissa, exponent = f"{x:.{digits}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def tex(x: float, digits: int = 1) -> str:
    r"""$1.2 \times 10^{-4}$."""
    mantissa, exponent = f"{x:.{digits}e}".split("e")
    return rf"${mantissa} \times 10^{{{int(exponent)}}}$"


def pct(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f}%"


def sec(x: float) -> str:
    return f"{x:.0f} s" if x >= 10 else f"{x:.1f} s"


def _namespace() -> dict:
    r = results()

    def example(name, *path):
        value = r["examples"]["examples"][name]
        for key in path:
            value = value[key]
        return value

    def acc(problem, method, key="relative_l2", dtype="float64"):
        (row,) = [
            x
            for x in r["accuracy"]["rows"]
            if x["problem"] == problem and x["method"] == method and x["dtype"] == dtype
        ]
        return row[key]

    def adam_same_time(f):
        return f(
            x["relative_l2"]
            for x in r["accuracy"]["rows"]
            if x["method"].startswith("Adam (same time)")
        )

    def steady(problem, framework):
        return r["vs_pytorch"]["problems"][problem]["steady_state"]["results"][
            framework
        ]["steps_per_s"]

    def ratio(problem, a, b):
        return steady(problem, a) / steady(problem, b)

    def flops(key):
        return r["vs_pytorch"]["problems"]["oscillator"]["steady_state"][key]

    def tta(problem, framework, key):
        return r["vs_pytorch"]["problems"][problem]["time_to_accuracy"]["results"][
            framework
        ][key]

    def train_ms(order, method):
        (row,) = [
            x
            for x in r["derivatives"]["rows"]
            if x["order"] == order and x["method"] == method
        ]
        return row["train_ms"]

    def taylor_speedup(order):
        return train_ms(order, "nested forward") / train_ms(order, "taylor")

    def ensemble(name, run, key="speedup_vs_sequential"):
        return r[name]["runs"][run][key]

    def torchlike(*prefixes):
        rows = [
            x
            for x in r["torchlike"]["rows"]
            if not prefixes or x["case"].startswith(prefixes)
        ]
        return len(rows), max(x["difference"] for x in rows)

    def thread(name):
        (row,) = [x for x in r["torchlike"]["threads"] if x["name"].startswith(name)]
        return row["value"]

    def page(*path):
        value = r["accuracy_page"]
        for key in path:
            value = value[key]
        return value

    def calib(key):
        return [x[key] for x in r["calibration"]["parameters"].values()]

    def stiff(name, method="full", key="errors"):
        """The worst component's error (or another field) of a stiff.json row."""
        value = r["stiff"]["problems"][name][method][key]
        return max(value) if key == "errors" else value

    return {**globals(), **locals(), "r": r}


# -- the figures -----------------------------------------------------------------


class Figure(NamedTuple):
    """`template` (an f-string over the result files) must appear in `page`."""

    page: str
    template: str

    def text(self) -> str:
        return eval("f" + repr(self.template), _namespace())  # noqa: S307


HOGWILD_DATA = "PyTorch Hogwild threads, p.data -= lr * p.grad"
BVP_SINE = "BVP y'' = -pi^2 sin(pi t)"
_OSC = "example('oscillator', 'returned', 'relative_l2')"
_TORCH_BASICS = (
    "y = x1",
    "grad_outputs",
    "unused",
    "accumulation",
    "backward(inputs",
    "create_graph",
)

FIGURES = [
    # README.md: beyond the menu (stiff.json, family.json, calibration.json).
    Figure(
        "README.md",
        "Robertson over [0, 1e5] {e(stiff('robertson'))}, Van der Pol with "
        "μ = 100 and 1000 over two periods {e(stiff('van_der_pol_100'))} and "
        "{e(stiff('van_der_pol_1000'))}, HIRES {e(stiff('hires'))}",
    ),
    Figure(
        "README.md",
        "each in at most {max(stiff(n, key='wall_time') for n in r['stiff']"
        "['problems']):.0f} s on this 2-core CPU (the plain default `fit`: "
        "{min(stiff(n, 'plain default') for n in r['stiff']['problems']):.1f} to "
        "{max(stiff(n, 'plain default') for n in r['stiff']['problems']):.0f}; "
        "without the local error check, Van der Pol stays wrong at "
        "{min(stiff(n, 'planned windows only') for n in ('van_der_pol_100', "
        "'van_der_pol_1000')):.1f} or worse)",
    ),
    Figure(
        "README.md",
        "relative L2 of {e(r['family']['accuracy']['median_relative_l2'])} "
        "(`benchmarks/results/family.json`",
    ),
    Figure(
        "README.md",
        "Over {r['calibration']['seeds_used']} synthetic Lotka–Volterra data sets the "
        "nominal 95% intervals covered the true rates "
        "{pct(min(calib('coverage_pinn')))}–{pct(max(calib('coverage_pinn')))} of "
        "the time (classical: {pct(min(calib('coverage_classical')))}–"
        "{pct(max(calib('coverage_classical')))}), "
        "{min(calib('width_ratio_median')):.2f}–"
        "{max(calib('width_ratio_median')):.2f}× the classical width",
    ),
    # README.md: the install line and the quickstart.
    Figure(
        "README.md",
        "fit a PINN to the damped oscillator u'' + 4u' + 400u = 0 "
        "(≈ {sec(example('oscillator', 'returned', 'wall_time'))} on 2 CPU cores)",
    ),
    Figure("README.md", "# ≈ {e(" + _OSC + ")}"),
    # README.md: the examples tables (benchmarks/results/examples.json).
    Figure(
        "README.md",
        "| 40k Adam steps, 64×3 | {e(" + _OSC + ")} | "
        "{sec(example('oscillator', 'returned', 'wall_time'))} |",
    ),
    Figure(
        "README.md",
        "| 20k Adam steps, 64×3 | "
        "{e(example('exponential_decay', 'returned', 'relative_l2'))} | "
        "{sec(example('exponential_decay', 'returned', 'wall_time'))} |",
    ),
    Figure(
        "README.md",
        "y(0) = 0.1, [0, 10] | 20k Adam steps, 64×3 | "
        "{e(example('logistic', 'returned', 'relative_l2'))} | "
        "{sec(example('logistic', 'returned', 'wall_time'))} |",
    ),
    Figure(
        "README.md",
        "rel. L2 {e(example('pendulum', 'returned', 'relative_l2'))} (float32), "
        "{sec(example('pendulum', 'returned', 'wall_time'))} |",
    ),
    Figure(
        "README.md",
        "{e(float(example('bvp', 'printed', BVP_SINE, "
        "'relative L2 vs exact sin(pi t)')))} vs sin πt; Bratu "
        "{e(example('bvp', 'returned', 'relative_l2_bratu'))} vs shooting",
    ),
    Figure(
        "README.md",
        "2% noise: every rate within "
        "{pct(example('inverse_lotka_volterra', 'returned', "
        "'max_parameter_error_noise_0.02'))}; noise-free: within "
        "{pct(example('inverse_lotka_volterra', 'returned', "
        "'max_parameter_error_noise_0'), 2)}",
    ),
    Figure(
        "README.md",
        "extrapolation error over the next half period "
        "{pct(example('neural_ode', 'returned', 'extrapolation_half_period'))} "
        "({pct(float(example('neural_ode', 'printed', 'neural ODE, Lotka-Volterra', "
        "'relative L2 on the data interval')), 2)} on the data)",
    ),
    # README.md: derivatives (benchmarks/results/derivatives.json).
    Figure(
        "README.md",
        "Per training step it is {taylor_speedup(2):.2f}× faster than nested forward "
        "mode at order 2, {taylor_speedup(3):.2f}× at order 3 and "
        "{taylor_speedup(4):.2f}× at order 4",
    ),
    # README.md: Lotka-Volterra on one network (accuracy.json).
    Figure(
        "README.md",
        "`fit`'s default Adam for {sec(acc('Lotka–Volterra [0, 10]', "
        "'Adam (same time)', 'wall_time'))} ends at a relative error of "
        "{acc('Lotka–Volterra [0, 10]', 'Adam (same time)'):.1f}, and Adam→LM at "
        "{acc('Lotka–Volterra [0, 10]', 'Adam→LM'):.2f}",
    ),
    # README.md: fit overhead.
    Figure(
        "README.md",
        "median ratio {r['fit_overhead']['ratio_odefit_over_hand']:.2f} of the "
        "hand-written loop's steps/s (min {r['fit_overhead']['ratio_min_max'][0]:.2f}, "
        "max {r['fit_overhead']['ratio_min_max'][1]:.2f} over "
        "{r['fit_overhead']['repeats']} interleaved repeats of "
        "{r['fit_overhead']['steps_per_repeat']:,} steps at "
        "{r['fit_overhead']['points']:,} points",
    ),
    # README.md: speed against PyTorch (vs_pytorch.json).
    Figure(
        "README.md",
        "**{ratio('oscillator', 'odefit', 'pytorch-eager'):.2f}× "
        "PyTorch eager steps/s** on the second-order oscillator (1024 points, width "
        "64; a hand-written JAX loop with nested `jvp` "
        "{ratio('oscillator', 'jax-hand', 'pytorch-eager'):.2f}×)",
    ),
    Figure(
        "README.md",
        "{ratio('lotka-volterra', 'odefit', 'pytorch-eager'):.2f}× "
        "on Lotka–Volterra, where the hand-written JAX loop (one `jax.jvp`, like "
        "odefit's) is faster still: odefit runs at "
        "{ratio('lotka-volterra', 'odefit', 'jax-hand'):.2f}× "
        "its steps/s ({steady('lotka-volterra', 'odefit'):.0f} against "
        "{steady('lotka-volterra', 'jax-hand'):.0f})",
    ),
    Figure(
        "README.md",
        "With Adam on both sides no framework reaches 1e-3 on the oscillator within "
        "40,000 steps: odefit ends at {e(tta('oscillator', 'odefit', 'final_error'))} "
        "after {sec(tta('oscillator', 'odefit', 'final_s'))}, PyTorch eager at "
        "{tta('oscillator', 'pytorch-eager', 'final_error'):.2f} after "
        "{sec(tta('oscillator', 'pytorch-eager', 'final_s'))}",
    ),
    Figure(
        "README.md",
        "odefit's Adam→Levenberg–Marquardt recipe reaches 1e-3 there in "
        "{sec(tta('oscillator', 'odefit-lm', 'time_to_0.001_s'))} including "
        "compilation, but the same recipe fails on Lotka–Volterra over [0, 10] "
        "(error {tta('lotka-volterra', 'odefit-lm', 'final_error'):.1f} after "
        "{sec(tta('lotka-volterra', 'odefit-lm', 'final_s'))}), where plain Adam "
        "does better (the hand-written JAX loop "
        "{e(tta('lotka-volterra', 'jax-hand', 'final_error'))}, odefit "
        "{e(tta('lotka-volterra', 'odefit', 'final_error'))})",
    ),
    Figure(
        "README.md",
        "odefit runs {ratio('oscillator', 'odefit', 'pytorch-compile'):.2f}× "
        "its steps/s ({ratio('lotka-volterra', 'odefit', 'pytorch-compile'):.2f}× "
        "on Lotka–Volterra)",
    ),
    Figure(
        "README.md",
        "{ensemble('ensemble', 'fit_ensemble (batch_size=8)'):.2f}× over sequential "
        "fits for width-64 networks on 256 points, "
        "{ensemble('ensemble_small', 'fit_ensemble (batch_size=64)'):.2f}× for width "
        "16 on 64 points",
    ),
    # README.md: accuracy (accuracy.json).
    Figure(
        "README.md",
        "oscillator {e(acc('damped oscillator', 'Adam→LM'))} in "
        "{sec(acc('damped oscillator', 'Adam→LM', 'wall_time'))} and exponential "
        "decay {e(acc('exponential decay', 'Adam→LM'))} in "
        "{sec(acc('exponential decay', 'Adam→LM', 'wall_time'))} (Adam→LM); "
        "Lotka–Volterra [0, 10] "
        "{e(acc('Lotka–Volterra [0, 10]', 'marching Adam→LM'))} and "
        "[0, 30] {e(acc('Lotka–Volterra [0, 30]', 'marching Adam→LM'))} "
        "(time marching); Van der Pol μ = 1 on [0, 10] "
        "{e(acc('Van der Pol μ=1 [0, 10]', 'marching Adam→LM'))}",
    ),
    Figure(
        "README.md",
        "`fit`'s default Adam given the same wall time ends between "
        "{e(adam_same_time(min))} (logistic) and {adam_same_time(max):.1f} "
        "(Lotka–Volterra [0, 10])",
    ),
    Figure(
        "README.md",
        "In float32 the same recipe stops at "
        "{e(acc('damped oscillator', 'Adam→LM', dtype='float32'))} on the "
        "oscillator",
    ),
    # README.md: the torchlike table (torchlike.json).
    Figure(
        "README.md",
        "| {torchlike(*_TORCH_BASICS)[0]} | {torchlike(*_TORCH_BASICS)[1]:.1e} |",
    ),
    Figure(
        "README.md",
        "| {torchlike('PINN loss')[0]} | {torchlike('PINN loss')[1]:.1e} |",
    ),
    Figure(
        "README.md",
        "| {torchlike('4 threads')[0]} | {torchlike('4 threads')[1]:.1e} |",
    ),
    Figure(
        "README.md",
        "| {torchlike('hand-written loop')[0]} | "
        "{torchlike('hand-written loop')[1]:.1e} |",
    ),
    Figure(
        "README.md",
        "| {torchlike('threaded training')[0]} | "
        "{torchlike('threaded training')[1]:.1e} |",
    ),
    Figure(
        "README.md",
        "| **all** | **{torchlike()[0]}** | **{torchlike()[1]:.1e}** (tolerance "
        "{r['torchlike']['tolerance']:g}) |",
    ),
    Figure(
        "README.md",
        "torch {r['torchlike']['versions']['torch']}, jax "
        "{r['torchlike']['versions']['jax']}, Python "
        "{r['torchlike']['versions']['python']}",
    ),
    Figure(
        "README.md",
        "failed in "
        "{thread('PyTorch Hogwild threads, optimizer.step(): runs that failed'):.0f}"
        " of 3 runs written with `optimizer.step()` (autograd's in-place error, or "
        "the process crashing) and in "
        "{thread(HOGWILD_DATA + ': runs that failed'):.0f} of 3 written as "
        "`p.data -= lr * p.grad`; the runs that finished ended up to "
        "{e(thread(HOGWILD_DATA + ': |weights'))} away, in some weight, from the "
        "same updates taken in turn, and {e(thread(HOGWILD_DATA + ': |run'))} from "
        "each other",
    ),
    Figure(
        "README.md",
        "lost {thread('JAX shared variable, no lock, all read'):.0f} of 40 updates",
    ),
    # docs/speed.md (ensemble.json, ensemble_small.json, vs_pytorch.json).
    Figure(
        "docs/speed.md",
        "trained {ensemble('ensemble', 'fit_ensemble (batch_size=8)'):.2f}× faster "
        "than 64 separate fits on 2 cores with 8 members per batch, and "
        "{ensemble('ensemble', 'fit_ensemble (batch_size=None)'):.2f}× with all 64 "
        "members vectorised at once",
    ),
    Figure(
        "docs/speed.md",
        "against {ensemble('ensemble', 'sequential fit', 'wall_s'):.1f} s one after "
        "another",
    ),
    Figure(
        "docs/speed.md",
        "all 64 at once ran "
        "{ensemble('ensemble_small', 'fit_ensemble (batch_size=64)'):.2f}× faster "
        "(8 per batch: "
        "{ensemble('ensemble_small', 'fit_ensemble (batch_size=8)'):.2f}×)",
    ),
    Figure(
        "docs/speed.md",
        "({flops('odefit_flops_per_step') / 1e6:.0f} "
        "against "
        "{flops('flops_per_step') / 1e6:.0f}"
        " MFLOP at 1024 points, width 64) and runs "
        "{ratio('oscillator', 'odefit', 'jax-hand'):.2f}× as "
        "many steps per second",
    ),
    Figure(
        "docs/speed.md",
        "odefit ran at {steady('lotka-volterra', 'odefit'):.0f} steps/s against the "
        "hand-written loop's {steady('lotka-volterra', 'jax-hand'):.0f} "
        "({ratio('lotka-volterra', 'odefit', 'jax-hand'):.2f}×)",
    ),
    Figure(
        "docs/speed.md",
        "the oscillator, {r['fit_overhead']['ratio_odefit_over_hand']:.2f} of the "
        "hand-written loop's steps/s",
    ),
    # docs pages on accuracy and float32 (accuracy.json, accuracy_page.json).
    Figure(
        "docs/accuracy.md",
        "the damped oscillator of the benchmark below stops at "
        "{tex(acc('damped oscillator', 'Adam→LM', dtype='float32'))} in float32 "
        "against {tex(acc('damped oscillator', 'Adam→LM'))} in float64",
    ),
    Figure(
        "docs/how-to/physics-informed.md",
        "{tex(acc('damped oscillator', 'Adam→LM', dtype='float32'))} in float32 "
        "against {tex(acc('damped oscillator', 'Adam→LM'))} in float64",
    ),
    Figure(
        "docs/how-to/custom-network.md",
        "Adam→Levenberg–Marquardt stops at "
        "{tex(acc('damped oscillator', 'Adam→LM', dtype='float32'))} in float32 "
        "against {tex(acc('damped oscillator', 'Adam→LM'))} in float64",
    ),
    Figure(
        "docs/troubleshooting.md",
        "stopped at {tex(acc('damped oscillator', 'Adam→LM', dtype='float32'))} "
        "in float32 and reached {tex(acc('damped oscillator', 'Adam→LM'))} in float64",
    ),
    Figure(
        "docs/accuracy.md",
        "the same recipe stalls at a relative error near "
        "{page('long_horizon', 'one network', 'relative_l2'):.1f}",
    ),
    # docstrings (those of modules owned elsewhere through PENDING below).
    Figure(
        "src/odefit/_lbfgs.py",
        "first `fit` call compiled in "
        "{sec(r['compile_time']['results']['neural_ode']['first_fit'])} on a 2-core "
        "CPU",
    ),
    Figure(
        "src/odefit/_least_squares.py",
        "stopped at {e(acc('damped oscillator', 'Adam→LM', dtype='float32'))} in "
        "float32 and reached {e(acc('damped oscillator', 'Adam→LM'))} in float64",
    ),
    Figure(
        "src/odefit/_derivatives.py",
        "{taylor_speedup(2):.2f}x faster than with two nested `jax.jvp`s, and "
        "{taylor_speedup(3):.2f}x and {taylor_speedup(4):.2f}x at orders 3 and 4",
    ),
    # docs/how-to/families.md (family.json).
    Figure(
        "docs/how-to/families.md",
        "median relative L2 error of "
        "{e(r['family']['accuracy']['median_relative_l2'])} and a 95th percentile "
        "of {e(r['family']['accuracy']['p95_relative_l2'])} (after the Adam "
        "warm-up alone: median "
        "{e(r['family']['accuracy']['after_adam_median_relative_l2'])})",
    ),
    Figure(
        "docs/how-to/families.md",
        "took {r['family']['speed']['pinn_seconds']:.1f} s with the network against "
        "{r['family']['speed']['diffrax_seconds']:.2f} s for diffrax solving them "
        "(vmapped Tsit5, rtol 1e-6), a ratio of "
        "{r['family']['speed']['ratio']:.2f}× on a loaded 2-core CPU",
    ),
    Figure(
        "docs/how-to/families.md",
        "(median "
        "{e(r['family']['speed']['median_relative_l2_vs_tight_reference']['pinn'])} "
        "against diffrax's "
        "{e(r['family']['speed']['median_relative_l2_vs_tight_reference']['diffrax'])}"
        " at that tolerance)",
    ),
]


class NotMeasured(NamedTuple):
    """A phrase holding numbers that are not measurements, and why."""

    page: str
    phrase: str
    why: str


_SETTING = "a setting of the run, not a measurement"
_TOLERANCE = "a tolerance or threshold, not a measurement"
_DEFAULT = "a default value of odefit, not a measurement"
_ORDER = "an order of magnitude stated as the span of a generated table"

NOT_MEASURED = [
    NotMeasured("README.md", "decaying from 3e-3 to 3e-5", _DEFAULT),
    NotMeasured("README.md", "64×3", "the network's size (width × depth)"),
    NotMeasured("README.md", "rates started at 50%", _SETTING),
    NotMeasured("README.md", "Robertson over [0, 1e5]", "the problem's interval"),
    NotMeasured("README.md", "2% noise", _SETTING),
    NotMeasured("README.md", "reaches 1e-3", _TOLERANCE),
    NotMeasured("README.md", "reaches 1e-3 there", _TOLERANCE),
    NotMeasured("README.md", "reaches 1e-3 on the oscillator", _TOLERANCE),
    NotMeasured(
        "README.md",
        "the 10× aimed for",
        "the project's target, stated as not met; the bound is in benchmarks/README.md",
    ),
    NotMeasured(
        "README.md",
        "the one-device model to 1e-9",
        "the tolerance of tests/test_sharding.py, which asserts it",
    ),
    NotMeasured("README.md", "(tolerance 1e-10)", _TOLERANCE),
    NotMeasured("docs/accuracy.md", "$10^{-2}$–$10^{-3}$", _ORDER),
    NotMeasured("docs/accuracy.md", "$10^{-6}$ and below", _ORDER),
    NotMeasured("docs/accuracy.md", "$10^{-11}$ (relative)", _DEFAULT),
    NotMeasured("docs/accuracy.md", "$10^{-12}$ (absolute)", _DEFAULT),
    NotMeasured("docs/accuracy.md", "$10^{-6}$/$10^{-7}$", _DEFAULT),
    NotMeasured(
        "docs/accuracy.md",
        "only good to about $10^{-6}$",
        "follows from the float32 tolerances just stated",
    ),
    NotMeasured("docs/getting-started.md", "$10^{-6}$ and", _ORDER),
    NotMeasured(
        "src/odefit/_tolerance.py",
        "Adam from 1e-2 decaying to 1e-4",
        "the warm-up's learning-rate schedule, a setting",
    ),
    NotMeasured(
        "docs/getting-started.md",
        "down to about 1e-4 can be asked",
        "fit_to_tolerance's float32 floor, a default of odefit",
    ),
    NotMeasured("docs/grad-vs-backward.md", "1e-10", _TOLERANCE),
    NotMeasured("docs/how-to/physics-informed.md", "$3 \\times 10^{-3}$", _DEFAULT),
    NotMeasured("docs/how-to/physics-informed.md", "$3 \\times 10^{-5}$", _DEFAULT),
    NotMeasured("docs/troubleshooting.md", "$3 \\times 10^{-3}$", _DEFAULT),
    NotMeasured("docs/speed.md", "below $10^{-5}$", _TOLERANCE),
    NotMeasured("docs/index.md", "to $10^{-10}$", _TOLERANCE),
    NotMeasured("docs/index.md", "$10^{-3}$ to $10^{-7}$", _ORDER),
    NotMeasured("docs/how-to/supervised.md", "a few $10^{-4}$", _ORDER),
    NotMeasured("docs/how-to/supervised.md", "a few $10^{-2}$", _ORDER),
    NotMeasured(
        "docs/speed.md",
        "1.33 TFLOP, at least 4.5 s",
        "arithmetic from XLA's FLOP count and the measured peak in vs_pytorch.json "
        "(benchmarks/README.md derives it)",
    ),
    NotMeasured(
        "src/odefit/_derivatives.py", "logistic function of $2x$", "maths, not a figure"
    ),
    NotMeasured("src/odefit/_error_estimate.py", "default 1e-7 and 1e-9", _DEFAULT),
    NotMeasured("src/odefit/_error_estimate.py", "1e-4 and 1e-6 in float32", _DEFAULT),
    NotMeasured("src/odefit/_fit.py", "learning rate 3e-3 decaying to 3e-5", _DEFAULT),
    NotMeasured("docs/how-to/extend.md", "is below 1e-2", "the example's own target"),
    NotMeasured(
        "src/odefit/_tolerance.py",
        "Below about 1e-4 float64 is needed",
        "the float32 floor that fit_to_tolerance enforces (a setting; chosen from "
        "accuracy.json's 1.2e-4)",
    ),
    NotMeasured("src/odefit/_trainers.py", "from 3e-3 to 3e-5", _DEFAULT),
    NotMeasured("src/odefit/_least_squares.py", "default 1e-10 in float64", _DEFAULT),
    NotMeasured("src/odefit/_least_squares.py", "and 1e-4 in float32", _DEFAULT),
    NotMeasured("src/odefit/_models/neural_ode.py", "rtol=1e-7, atol=1e-9", _DEFAULT),
    NotMeasured("src/odefit/_models/neural_ode.py", "rtol=1e-5, atol=1e-6", _DEFAULT),
    NotMeasured("src/odefit/_problems.py", "1e-11/1e-12", _DEFAULT),
    NotMeasured("src/odefit/_problems.py", "1e-6/1e-7", _DEFAULT),
    NotMeasured(
        "docs/how-to/inverse-problem.md", "noise 2% of the solution's size", _SETTING
    ),
    NotMeasured("docs/how-to/inverse-problem.md", "nominal 95% interval", _SETTING),
    NotMeasured(
        "src/odefit/_uncertainty.py", "default 1e-8 in float64 and 1e-4 in", _DEFAULT
    ),
    # docs/how-to/stiff.md: the problems' own constants, and tolerances.
    NotMeasured(
        "docs/how-to/stiff.md",
        "rates from 0.04 to 3e7",
        "the rate constants of the Robertson problem",
    ),
    NotMeasured(
        "docs/how-to/stiff.md",
        "never exceeds a few times 1e-5",
        "a property of the Robertson solution (its y2 peaks at 3.65e-5)",
    ),
    NotMeasured("docs/how-to/stiff.md", "a species of size 1e-5", "an illustration"),
    NotMeasured("docs/how-to/stiff.md", "a tolerance of 1e-13", _TOLERANCE),
    NotMeasured(
        "src/odefit/_tolerance.py",
        "(never below 1e-10 in float64, 1e-5 in float32)",
        _TOLERANCE,
    ),
]


class Pending(NamedTuple):
    """A stale figure in a docstring of a module that another change owns: `old`
    is checked as if it read `new` until the owner applies the replacement."""

    page: str
    old: str
    new: str


PENDING: list[Pending] = []


# -- scanning --------------------------------------------------------------------

# What a measured figure looks like in prose.
MEASUREMENT = re.compile(
    r"""(
       \d[\d,]*(?:\.\d+)?\s?×|\d(?:\.\d+)?x\b                 # a ratio: 1.3×, 1.3x
     | \d[\d,]*(?:\.\d+)?\s?(?:s|ms|min)\b                  # a time: 9 s, 2.5 ms
     | \d[\d,]*(?:\.\d+)?\s?(?:steps/s|GFLOP/s|TFLOP|MFLOP)  # a rate or a count
     | \d+(?:\.\d+)?\s?%                                    # a percentage
     | \d(?:\.\d+)?e[-+]?\d+                                # 1.2e-4
     | \d(?:\.\d+)?\s?\\times\s?10\^\{?-?\d+\}?             # $1.2 \times 10^{-4}$
     | 10\^\{-?\d+\}                                        # $10^{-4}$
    )""",
    re.X,
)

_FENCE = re.compile(r"^\s*(```|~~~)")


def pages() -> list[Path]:
    """README.md, every docs page and every module of the package."""
    docs = sorted(p for p in (ROOT / "docs").rglob("*.md") if "_tools" not in p.parts)
    return [ROOT / "README.md", *docs, *sorted((ROOT / "src").rglob("*.py"))]


def _docstrings(path: Path) -> str:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    texts = []
    for node in ast.walk(tree):
        if isinstance(
            node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
        ):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                texts.append(doc)
    return "\n\n".join(texts)


def _comments(path: Path) -> str:
    return "\n".join(
        line.strip().lstrip("#")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.lstrip().startswith("#")
    )


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def text_of(page: str, *, with_pending: bool = True) -> str:
    """The text of a page as the checks read it, whitespace collapsed: a Markdown
    file whole, a module's docstrings and comments (with `PENDING` replacements)."""
    path = ROOT / page
    if path.suffix == ".py":
        text = _docstrings(path) + "\n" + _comments(path)
    else:
        text = path.read_text(encoding="utf-8")
    text = normalise(text)
    if with_pending:
        for p in PENDING:
            if p.page == page:
                text = text.replace(normalise(p.old), normalise(p.new))
    return text


def prose_of(page: str) -> str:
    """The text of a page outside code blocks, whitespace collapsed."""
    path = ROOT / page
    raw = _docstrings(path) if path.suffix == ".py" else path.read_text("utf-8")
    kept, inside = [], False
    for line in raw.splitlines():
        if _FENCE.match(line):
            inside = not inside
            continue
        if not inside:
            kept.append(line)
    text = normalise("\n".join(kept))
    for p in PENDING:
        if p.page == page:
            text = text.replace(normalise(p.old), normalise(p.new))
    return text


def unaccounted(page: str) -> list[str]:
    """Measurement-like figures in the page's prose that no `Figure` or
    `NOT_MEASURED` phrase covers, each with its context."""
    text = prose_of(page)
    covered = []
    phrases = [normalise(f.text()) for f in FIGURES if f.page == page]
    phrases += [normalise(n.phrase) for n in NOT_MEASURED if n.page == page]
    for phrase in phrases:
        start = text.find(phrase)
        while start != -1:
            covered.append((start, start + len(phrase)))
            start = text.find(phrase, start + 1)
    # Inline code (`optax.adam(1e-3)`) holds settings, not figures.
    covered += [m.span() for m in re.finditer(r"`[^`]*`", text)]
    found = []
    for match in MEASUREMENT.finditer(text):
        a, b = match.span()
        if not any(lo <= a and b <= hi for lo, hi in covered):
            found.append(f"{match.group(0)!r} in “…{text[max(0, a - 60) : b + 40]}…”")
    return found


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# The ODE leaderboard (docs/leaderboard.md): its tables and verdict are rendered
# from benchmarks/results/peers.json; the prose holds only thresholds.
NOT_MEASURED += [
    NotMeasured(
        "docs/leaderboard.md",
        "Time to 1e-2 and 1e-3 is the first recorded time",
        _TOLERANCE,
    ),
    NotMeasured("docs/leaderboard.md", "not first to 1e-3 everywhere", _TOLERANCE),
    NotMeasured("docs/leaderboard.md", "already far below 1e-3, but late", _TOLERANCE),
    NotMeasured("docs/leaderboard.md", "already below 1e-3 on the easiest", _TOLERANCE),
    NotMeasured("docs/leaderboard.md", "stays above 1e-2 on the BVP", _TOLERANCE),
]


if __name__ == "__main__":
    for figure in FIGURES:
        print(f"{figure.page}: {figure.text()}")
