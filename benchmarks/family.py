"""One PINN for a two-parameter family of a nonlinear ODE: accuracy over random
members, and the speed of evaluating many members against diffrax solving them.

The family: Lotka–Volterra, x' = x - x z, z' = -z + x z on [0, T], over a box of
initial values (x0, z0) in [LOW, HIGH]^2 (float64). One network
(3 -> width -> ... -> 2, tanh) takes (t, x0, z0); the initial value holds exactly
for every member. Training is odefit's recipe for small errors: Adam with fresh
(t, member) rows every step (`odefit.Uniform`, members redrawn with the times),
then `odefit.LevenbergMarquardt` on a fixed set of rows (`odefit.Grid`: evenly
spaced times paired with a Halton set of members).

- **accuracy**: 100 members drawn uniformly from the box with a key the training
  never used (so none of them is a training sample), each compared with
  `problem.solve(ts, params)` (diffrax Tsit5, rtol 1e-11) on 201 times: relative
  L2 error, median and 95th percentile.
- **speed**: 10,000 random members on 1,000 times: the trained network
  (`jax.vmap` over members and times, compiled) against diffrax solving the same
  members (`jax.vmap` of `diffeqsolve`, Tsit5, rtol = atol = 1e-6, compiled), in
  one run, medians of `--repeats` after a warm-up; compile times separately. The
  error of each against the tight reference on 100 of those members is checked
  first.

    python benchmarks/family.py            # the recorded run
    python benchmarks/family.py --quick    # a few-minute smoke run (not recorded)
"""

import argparse
import json
import os
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import diffrax as dfx  # noqa: E402
import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import odefit  # noqa: E402

HERE = Path(__file__).resolve().parent
LOW, HIGH = 0.6, 1.4
T1 = 5.0


def lotka_volterra(t, y, args):
    x, z = y
    return jnp.stack([x - x * z, -z + x * z])


def make_problem():
    box = odefit.Varies(LOW, HIGH)
    return odefit.IVP(lotka_volterra, 0.0, T1, y0=[box, box], args=None)


def train(problem, *, width, depth, adam_steps, adam_points, lm_steps, lm_points):
    model = odefit.PINN(problem, width=width, depth=depth, key=jax.random.key(0))
    start = time.perf_counter()
    schedule = optax.exponential_decay(3e-3, adam_steps, 1e-2)
    warm = odefit.fit(
        problem,
        model,
        steps=adam_steps,
        optimizer=optax.adam(schedule),
        collocation=odefit.Uniform(adam_points),
        key=jax.random.key(1),
        progress=False,
    )
    result = odefit.fit(
        problem,
        warm.model,
        steps=lm_steps,
        optimizer=odefit.LevenbergMarquardt(),
        collocation=odefit.Grid(lm_points),
        key=jax.random.key(2),
        progress=False,
    )
    seconds = time.perf_counter() - start
    return warm, result, seconds


def accuracy(problem, model, members: int):
    params = problem.family.sample(members, key=jax.random.key(123))
    ts = jnp.linspace(0.0, T1, 201)
    reference = problem.solve(ts, params)
    pred = eqx.filter_jit(jax.vmap(lambda p: model.predict(ts, p)))(params)
    errors = np.array(
        [float(odefit.relative_l2(pred[i], reference[i])) for i in range(members)]
    )
    return errors


def _diffrax(params, ts):
    def one(y0):
        return dfx.diffeqsolve(
            dfx.ODETerm(lotka_volterra),
            dfx.Tsit5(),
            t0=0.0,
            t1=T1,
            dt0=None,
            y0=y0,
            saveat=dfx.SaveAt(ts=ts),
            stepsize_controller=dfx.PIDController(rtol=1e-6, atol=1e-6),
            max_steps=100_000,
        ).ys

    return jax.vmap(one)(params)


def _timed(fn, *args, repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return first, times


def speed(problem, model, members: int, times: int, repeats: int):
    params = problem.family.sample(members, key=jax.random.key(7))
    ts = jnp.linspace(0.0, T1, times)
    network = eqx.filter_jit(lambda m, p: jax.vmap(lambda q: m.predict(ts, q))(p))
    solver = jax.jit(_diffrax)
    # Correctness first, on 100 of the members.
    check = params[:100]
    reference = problem.solve(ts, check)
    errors = {
        name: float(
            np.median(
                [
                    odefit.relative_l2(pred[i], reference[i])
                    for i in range(check.shape[0])
                ]
            )
        )
        for name, pred in (
            ("pinn", network(model, check)),
            ("diffrax", solver(check, ts)),
        )
    }
    pinn_first, pinn_times = _timed(network, model, params, repeats=repeats)
    dfx_first, dfx_times = _timed(solver, params, ts, repeats=repeats)
    pinn, solve = float(np.median(pinn_times)), float(np.median(dfx_times))
    return {
        "members": members,
        "times": times,
        "pinn_seconds": pinn,
        "pinn_seconds_all": pinn_times,
        "pinn_first_call_seconds": pinn_first,
        "diffrax_seconds": solve,
        "diffrax_seconds_all": dfx_times,
        "diffrax_first_call_seconds": dfx_first,
        "ratio": solve / pinn,
        "median_relative_l2_vs_tight_reference": errors,
    }


def main(
    *,
    width=32,
    depth=3,
    adam_steps=5000,
    adam_points=1024,
    lm_steps=300,
    lm_points=2048,
    members=100,
    eval_members=10_000,
    eval_times=1_000,
    repeats=5,
    output=None,
):
    load_start = list(os.getloadavg())
    problem = make_problem()
    warm, result, train_seconds = train(
        problem,
        width=width,
        depth=depth,
        adam_steps=adam_steps,
        adam_points=adam_points,
        lm_steps=lm_steps,
        lm_points=lm_points,
    )
    errors = accuracy(problem, result.model, members)
    warm_errors = accuracy(problem, warm.model, members)
    out = {
        "problem": (
            f"Lotka-Volterra x'=x-xz, z'=-z+xz on [0, {T1}], "
            f"(x0, z0) in [{LOW}, {HIGH}]^2, float64"
        ),
        "network": f"3 -> {width} x {depth} -> 2, tanh",
        "recipe": {
            "adam_steps": adam_steps,
            "adam_points": adam_points,
            "lm_steps": lm_steps,
            "lm_points": lm_points,
            "lm_stop_reason": result.stop_reason,
            "train_seconds": train_seconds,
        },
        "accuracy": {
            "members": members,
            "median_relative_l2": float(np.median(errors)),
            "p95_relative_l2": float(np.percentile(errors, 95)),
            "max_relative_l2": float(np.max(errors)),
            "after_adam_median_relative_l2": float(np.median(warm_errors)),
            "after_adam_p95_relative_l2": float(np.percentile(warm_errors, 95)),
            "bar_median": 1e-3,
            "bar_p95": 1e-2,
        },
        "speed": speed(problem, result.model, eval_members, eval_times, repeats),
        "speed_bar_ratio": 100.0,
        "load_average_start_of_run": load_start,
        "load_average_end": list(os.getloadavg()),
    }
    out["accuracy"]["met"] = bool(
        out["accuracy"]["median_relative_l2"] <= 1e-3
        and out["accuracy"]["p95_relative_l2"] <= 1e-2
    )
    out["speed"]["met"] = bool(out["speed"]["ratio"] >= 100.0)
    print(json.dumps(out, indent=1))
    if output is not None:
        import sys

        sys.path.insert(0, str(HERE))
        from _meta import complete  # benchmarks/_meta.py, beside this script

        command = "python benchmarks/family.py"
        out = complete(out, command, repeats=repeats)
        path = Path(output)
        path.write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {path}")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--adam-steps", type=int, default=5000)
    parser.add_argument("--lm-steps", type=int, default=300)
    parser.add_argument("--lm-points", type=int, default=2048)
    parser.add_argument("--no-write", action="store_true")
    a = parser.parse_args()
    if a.quick:
        main(
            width=16,
            depth=2,
            adam_steps=300,
            adam_points=256,
            lm_steps=20,
            lm_points=256,
            members=20,
            eval_members=1000,
            eval_times=100,
            repeats=2,
        )
    else:
        main(
            width=a.width,
            depth=a.depth,
            adam_steps=a.adam_steps,
            lm_steps=a.lm_steps,
            lm_points=a.lm_points,
            output=None if a.no_write else HERE / "results" / "family.json",
        )
