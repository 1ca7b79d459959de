"""odefit's runner, in odefit's own environment, in one of three modes:

- `default`: `odefit.fit` as a new user calls it, float32:
  `fit(problem, PINN(problem, key=k), steps=20000, key=k2)` (with the
  observations for the inverse problem), the settings of
  `benchmarks/tolerance_suite.py --mode baseline`.
- `recipe32`, `recipe64`: the recipe of `odefit.fit_to_tolerance`, in float32 or
  float64: a 16x2 PINN, 500 Adam steps (learning rate 1e-2 decaying to 1e-4) on
  redrawn points, then `odefit.LevenbergMarquardt(points=256)` on a fixed grid
  until the budget is spent; for the long-horizon problem, time marching
  (`odefit.fit_marching` with the stages and 20x2 networks of
  `fit_to_tolerance`, but 8 equal windows, one per period, instead of its
  automatic 45, which a short budget cannot fit), whose error is known once the
  last window is fit.

    python benchmarks/peers/run_odefit.py --problem damped --mode recipe64
"""

import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import common  # noqa: E402
import problems  # noqa: E402

MODES = ("default", "recipe32", "recipe64")
DEFAULT_STEPS = 20_000
ADAM_STEPS = 500
LM_POINTS = 256
LM_CHUNK = 20
# Windows of the long-horizon problem: one per period. fit_to_tolerance's
# automatic windows (max_change 1) make 45 of them, more than a short budget fits.
MARCH_WINDOWS = 8


def _settings(mode, name):
    if mode == "default":
        return {
            "precision": "float32",
            "fit": f"odefit.fit defaults, {DEFAULT_STEPS} steps",
        }
    precision = "float64" if mode == "recipe64" else "float32"
    if problems.problem(name)["kind"] == "long horizon":
        return {
            "precision": precision,
            "fit": f"fit_marching, {MARCH_WINDOWS} windows, 20x2 PINN per window, "
            "300 Adam + 100 LevenbergMarquardt(points=128) steps per window",
        }
    return {
        "precision": precision,
        "fit": f"16x2 PINN, {ADAM_STEPS} Adam steps (1e-2 -> 1e-4), then "
        f"LevenbergMarquardt(points={LM_POINTS}) until the budget",
    }


def run(name: str, mode: str, budget: float, seed: int = 0) -> dict:
    """One run; returns the result row."""
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}.")
    import jax

    if mode == "recipe64":
        jax.config.update("jax_enable_x64", True)
    import equinox as eqx
    import jax.numpy as jnp
    import jax.random as jr
    import ode_suite
    import optax

    import odefit

    dtype = jnp.float64 if mode == "recipe64" else jnp.float32
    spec = problems.problem(name)
    ref = problems.reference(name)
    entry = {e.name: e for e in ode_suite.PROBLEMS}[name]
    problem = entry.build(dtype)
    data = None
    if "obs_ts" in ref:
        data = odefit.Observations(
            jnp.asarray(ref["obs_ts"], dtype), jnp.asarray(ref["obs_ys"], dtype)
        )
    ts = jnp.asarray(ref["ts"], dtype)
    state = {"model": None, "step": 0, "args": None}
    predict = eqx.filter_jit(lambda model: jax.vmap(model)(ts))

    def evaluate():
        return jax.device_get(predict(state["model"])).reshape(ref["ys"].shape)

    rec = common.Recorder(budget, evaluate, ref["ys"])
    offset = {"steps": 0}

    def callback(info):
        state["model"], state["args"] = info.model, info.args
        steps = offset["steps"] + info.step
        rec.stop(steps - state["step"])
        state["step"] = steps
        rec.start()
        return rec.done

    key_model, key_fit, key_lm = jr.split(jr.key(seed), 3)
    common_kwargs = dict(observations=data, progress=False)
    if mode == "default":
        model = odefit.PINN(problem, key=key_model)
        state["model"] = model
        rec.record()
        rec.start()
        result = odefit.fit(
            problem,
            model,
            steps=DEFAULT_STEPS,
            key=key_fit,
            callback=callback,
            **common_kwargs,
        )
        results = [result]
    elif spec["kind"] == "long horizon":
        stages = [
            (optax.adam(optax.exponential_decay(1e-2, 300, 1e-2)), 300),
            (odefit.LevenbergMarquardt(points=128), 100),
        ]
        # The piecewise solution exists only once every window is fit: the first
        # point of the curve is the untrained network's error (a fresh PINN).
        state["model"] = odefit.PINN(problem, width=20, depth=2, key=key_model)
        rec.record()
        rec.start()
        result = odefit.fit_marching(
            problem,
            stages=stages,
            key=key_fit,
            windows=MARCH_WINDOWS,
            width=20,
            depth=2,
            progress=False,
            callback=lambda info: (
                rec.train_time + time.perf_counter() - rec._started >= budget
            ),
        )
        results = [result]
        state["step"] = 0
    else:
        model = odefit.PINN(problem, width=16, depth=2, key=key_model)
        state["model"] = model
        rec.record()
        rec.start()
        warm = odefit.fit(
            problem,
            model,
            steps=ADAM_STEPS,
            optimizer=optax.adam(optax.exponential_decay(1e-2, ADAM_STEPS, 1e-2)),
            key=key_fit,
            callback=callback,
            **common_kwargs,
        )
        results = [warm]
        state["model"] = warm.model
        offset["steps"] = int(warm.steps)
        if state["step"] < offset["steps"]:
            rec.stop(offset["steps"] - state["step"])
            state["step"] = offset["steps"]
            rec.start()
        if not rec.done:
            polish = odefit.fit(
                warm.problem,
                warm.model,
                steps=1_000_000,
                optimizer=odefit.LevenbergMarquardt(points=LM_POINTS),
                key=key_lm,
                chunk_size=LM_CHUNK,
                callback=callback,
                **common_kwargs,
            )
            results.append(polish)
        result = results[-1]
    total = (
        offset["steps"] + int(result.steps) if mode != "default" else int(result.steps)
    )
    if spec["kind"] == "long horizon" and mode != "default":
        total = int(result.steps)
    state["model"] = result.model
    rec.stop(max(total - state["step"], 0))
    rec.finish()
    row = {
        "problem": name,
        "library": "odefit",
        "mode": mode,
        "version": odefit.__version__,
        "status": "ok",
        "budget": budget,
        "settings": _settings(mode, name),
        "stop_reason": str(result.stop_reason),
        **rec.summary(),
    }
    if "true_params" in spec:
        found = [float(v) for v in jax.tree.leaves(result.args)]
        row["parameters"] = found
        row["parameter_error"] = max(
            abs(f - t) / abs(t) for f, t in zip(found, spec["true_params"], strict=True)
        )
    return row


def main(argv=None):
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--mode", choices=MODES, default="recipe64")
    args = p.parse_args(argv)
    common.emit(run(args.problem, args.mode, args.budget, args.seed), args.out)


if __name__ == "__main__":
    main()
