"""Is `odefit.fit` as fast as a hand-written compiled loop?

Same problem (the damped oscillator as a first-order system), same network
(1→64→64→64→2, tanh), same initial weights, same fixed collocation points, same
Adam: `odefit.fit` against a minimal jitted `lax.scan` training loop written
directly with Equinox and Optax. Reports steady-state steps/s (median and spread
over interleaved repeats, compilation excluded by a warm-up run) and the ratio.

    python benchmarks/fit_overhead.py [--points 1024] [--steps 2000] [--repeats 5]
"""

import argparse
import json
import platform
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

import odefit


def oscillator(t, y, args):
    return jnp.stack([y[1], -400.0 * y[0] - 4.0 * y[1]])


def hand_written(model: odefit.PINN, ts, optimizer, steps: int):
    """The loop a JAX user would write by hand for the same PINN and loss."""
    params, static = eqx.partition(model, model.trainable())
    units = model.scale / (model.t1 - model.t0)

    def loss_fn(p):
        m = eqx.combine(p, static)

        def residual(t):
            y, dy = jax.jvp(m, (t,), (jnp.ones_like(t),))
            return (dy - oscillator(t, y, None)) / units

        return jnp.mean(jax.vmap(residual)(ts) ** 2)

    @eqx.filter_jit
    def train(params, opt_state):
        def body(carry, _):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (eqx.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(
            body, (params, opt_state), None, length=steps
        )
        return params, opt_state, losses

    def run():
        p, _, losses = train(params, optimizer.init(params))
        jax.block_until_ready(p)
        return losses

    return run


def main(points: int = 1024, steps: int = 2000, repeats: int = 5, width: int = 64):
    problem = odefit.IVP(oscillator, 0.0, 1.0, jnp.array([1.0, 0.0]))
    model = odefit.PINN(problem, width=width, depth=3, key=jr.key(0))
    optimizer = optax.adam(1e-3)
    grid = odefit.Grid(points)
    ts = jnp.linspace(0.0, 1.0, points)

    def run_odefit():
        result = odefit.fit(
            problem,
            model,
            steps=steps,
            optimizer=optimizer,
            collocation=grid,
            chunk_size=steps // 10,
            key=jr.key(1),
            progress=False,
        )
        jax.block_until_ready(result.model)
        return result.history["loss"]

    run_hand = hand_written(model, ts, optimizer, steps // 10)

    def run_hand_all():
        return np.concatenate([np.asarray(run_hand()) for _ in range(10)])

    # Warm up (compile) and check both compute the same thing before timing.
    a, b = run_odefit(), run_hand_all()
    np.testing.assert_allclose(a[: steps // 10], b[: steps // 10], rtol=1e-3)
    times = {"odefit": [], "hand-written": []}
    for _ in range(repeats):
        for name, fn in (("odefit", run_odefit), ("hand-written", run_hand_all)):
            tic = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - tic)
    rates = {k: steps / np.asarray(v) for k, v in times.items()}
    ratio = rates["odefit"] / rates["hand-written"]
    out = {
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{jax.devices()[0].device_kind}, {jax.device_count()} device(s)",
        "points": points,
        "width": width,
        "steps_per_repeat": steps,
        "steps_per_s": {k: float(np.median(v)) for k, v in rates.items()},
        "steps_per_s_min_max": {
            k: [float(v.min()), float(v.max())] for k, v in rates.items()
        },
        "ratio_odefit_over_hand": float(np.median(ratio)),
        "ratio_min_max": [float(ratio.min()), float(ratio.max())],
    }
    from _meta import complete  # benchmarks/_meta.py, beside this script

    command = f"python benchmarks/fit_overhead.py --points {points} --steps {steps}"
    out = complete(out, f"{command} --repeats {repeats}", repeats)
    print(json.dumps(out, indent=2))
    path = Path(__file__).parent / "results" / "fit_overhead.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    main(args.points, args.steps, args.repeats)
