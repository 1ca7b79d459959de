"""The leaderboard's problems, as plain data shared by every runner.

Every runner (odefit's and each peer's, in its own virtual environment) reads the
problems from here and the references from `references.npz`, written by
`python benchmarks/peers/problems.py` in odefit's environment from the entries of
`benchmarks/ode_suite.py` (exact solutions, or diffrax Tsit5 at rtol 1e-11 /
atol 1e-12 in float64). This module imports nothing beyond the standard library
and NumPy, so that the peer environments need not install odefit.

Each runner writes the equation itself in its library's own idiom, from the
statement below.
"""

import pathlib

HERE = pathlib.Path(__file__).resolve().parent
REFERENCES = HERE / "references.npz"
# The error is measured on this many equally spaced times over [t0, t1].
N_EVAL = 1000

# name -> statement. `order` 1: y' = f(t, y); 2: y'' = f(t, y, y') (IVP) or a
# two-point BVP with `y0` = y(t0), `y1` = y(t1). `suite` names the entry of
# benchmarks/ode_suite.py that gives the reference.
PROBLEMS = {
    "lagaris1": dict(
        kind="scalar",
        statement="y' = t^3 + 2t + t^2 q - (t + q) y, q = (1 + 3t^2)/(1 + t + t^3), "
        "y(0) = 1 on [0, 1]",
        order=1,
        t0=0.0,
        t1=1.0,
        y0=[1.0],
    ),
    "logistic": dict(
        kind="scalar",
        statement="y' = y (1 - y), y(0) = 0.1 on [0, 10]",
        order=1,
        t0=0.0,
        t1=10.0,
        y0=[0.1],
    ),
    "lotka_volterra": dict(
        kind="system",
        statement="x' = x - xy, y' = -y + xy, (x, y)(0) = (1.5, 1) on [0, 12]",
        order=1,
        t0=0.0,
        t1=12.0,
        y0=[1.5, 1.0],
    ),
    "damped": dict(
        kind="second order",
        statement="u'' + 4u' + 400u = 0, u(0) = 1, u'(0) = 0 on [0, 1]",
        order=2,
        t0=0.0,
        t1=1.0,
        y0=[1.0],
        dy0=[0.0],
    ),
    "pendulum": dict(
        kind="second order, nonlinear",
        statement="u'' = -sin u, u(0) = 1, u'(0) = 0 on [0, 10]",
        order=2,
        t0=0.0,
        t1=10.0,
        y0=[1.0],
        dy0=[0.0],
    ),
    "bratu": dict(
        kind="BVP",
        statement="u'' + e^u = 0, u(0) = u(1) = 0 (Bratu, lambda = 1, lower branch)",
        order=2,
        bvp=True,
        t0=0.0,
        t1=1.0,
        y0=[0.0],
        y1=[0.0],
    ),
    "harmonic_long": dict(
        kind="long horizon",
        statement="u'' = -u, u(0) = 0, u'(0) = 1 on [0, 16 pi] (8 periods)",
        order=2,
        t0=0.0,
        t1=16.0 * 3.141592653589793,
        y0=[0.0],
        dy0=[1.0],
    ),
    "inverse_lotka_volterra": dict(
        kind="inverse",
        statement="x' = a x - b x y, y' = -c y + d x y, (x, y)(0) = (1, 1) on [0, 5]; "
        "identify (a, b, c, d) = (1.5, 1, 3, 1) from 40 noise-free observations, "
        "starting 30% off at (1.95, 0.7, 2.1, 1.3)",
        order=1,
        t0=0.0,
        t1=5.0,
        y0=[1.0, 1.0],
        true_params=[1.5, 1.0, 3.0, 1.0],
        guess=[1.95, 0.7, 2.1, 1.3],
    ),
}
NAMES = tuple(PROBLEMS)


def problem(name: str) -> dict:
    if name not in PROBLEMS:
        raise ValueError(f"`problem` must be one of {NAMES}, got {name!r}.")
    return dict(PROBLEMS[name], name=name)


def reference(name: str) -> dict:
    """`ts` (N_EVAL,), `ys` (N_EVAL, dim) and, for the inverse problem, the
    observations `obs_ts`, `obs_ys`."""
    import numpy as np

    problem(name)
    with np.load(REFERENCES) as data:
        out = {
            key.split("/", 1)[1]: data[key]
            for key in data.files
            if key.startswith(name + "/")
        }
    if not out:
        raise RuntimeError(
            f"{REFERENCES} has no reference for {name!r}; rerun "
            "`python benchmarks/peers/problems.py`."
        )
    return out


def write_references() -> None:
    """Compute the references in odefit's environment (float64) and save them."""
    import sys

    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np

    sys.path.insert(0, str(HERE.parent))
    import ode_suite

    suite = {entry.name: entry for entry in ode_suite.PROBLEMS}
    arrays = {}
    for name, spec in PROBLEMS.items():
        entry = suite[name]
        ts = jnp.linspace(spec["t0"], spec["t1"], N_EVAL, dtype=jnp.float64)
        ys = np.asarray(entry.reference(ts)).reshape(N_EVAL, -1)
        arrays[f"{name}/ts"] = np.asarray(ts)
        arrays[f"{name}/ys"] = ys
        if entry.inverse:
            assert list(entry.true_args) == spec["true_params"], name
            obs = entry.observations(jnp.float64)
            arrays[f"{name}/obs_ts"] = np.asarray(obs.ts)
            arrays[f"{name}/obs_ys"] = np.asarray(obs.ys).reshape(len(obs.ts), -1)
    np.savez(REFERENCES, **arrays)


if __name__ == "__main__":
    write_references()
    print(REFERENCES)
