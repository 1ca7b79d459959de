"""What does the k-th time derivative of a network cost: Taylor mode, nested
forward mode or nested reverse mode?

A PINN's residual needs $y^{(k)}(t)$ at every collocation point. Three ways to get
it in JAX:

- **Taylor mode** (`odefit.derivatives`): one pass of a truncated Taylor series,
  all orders at once, linear layers taking every coefficient in one product;
- **nested forward** (`odefit.derivatives(..., taylor=False)`): $k$ nested
  `jax.jvp`s;
- **nested reverse**: $k$ nested `jax.grad`s, the structure of a PyTorch PINN's
  `autograd.grad(u, t, grad_outputs=ones, create_graph=True)` chain.

Same network (1→64→64→64→1, tanh), same weights, same 1024 points, float64. For
orders 1–4 it reports, per method: the size of the compiled program (equations in
the jaxpr, a load-independent proxy of work), the median time (and spread over
repeats) of (a) evaluating $y^{(k)}$ at every point and (b) one training step's
worth of work, the gradient of $\\operatorname{mean}(y^{(k)})^2$ with respect to
the weights; compile time separately. All three methods are checked to agree to
1e-10 (relative) before anything is timed.

    python benchmarks/derivatives.py [--points 1024] [--repeats 7] [--json PATH]
"""

import argparse
import json
import platform
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.flatten_util  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402

import odefit  # noqa: E402

ORDERS = (1, 2, 3, 4)


def nested_reverse(fn, t, order):
    """The k-th derivative of a scalar function by k nested reverse passes."""
    g = fn
    for _ in range(order):
        g = jax.grad(g)
    return g(t)


def methods(order):
    return {
        "taylor": lambda f, t: odefit.derivatives(f, t, order)[-1],
        "nested forward": lambda f, t: odefit.derivatives(f, t, order, taylor=False)[
            -1
        ],
        "nested reverse": lambda f, t: nested_reverse(f, t, order),
    }


def count_equations(jaxpr) -> int:
    """Equations in a jaxpr, sub-jaxprs (calls, custom rules) included."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)  # a ClosedJaxpr's inner Jaxpr
    total = 0
    for eqn in jaxpr.eqns:
        total += 1
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            total += count_equations(sub)
    return total


def timed(fn, *args, repeats):
    tic = time.perf_counter()
    jax.block_until_ready(fn(*args))  # compiles
    compile_time = time.perf_counter() - tic
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - tic)
    times = np.array(times) * 1e3
    return compile_time, float(np.median(times)), float(times.max() - times.min())


def main(points: int = 1024, repeats: int = 7, json_path: str | None = None):
    mlp = eqx.nn.MLP(1, 1, 64, 3, activation=jnp.tanh, key=jr.key(0))
    params, static = eqx.partition(mlp, eqx.is_inexact_array)
    ts = jnp.linspace(-1.0, 1.0, points)

    def scalar_fn(p):
        net = eqx.combine(p, static)
        return lambda t: net(jnp.expand_dims(t, 0))[0]

    rows = []
    for order in ORDERS:
        values = {}
        for name, derivative in methods(order).items():

            def evaluate(p, ts, derivative=derivative):
                f = scalar_fn(p)
                return jax.vmap(lambda t: derivative(f, t))(ts)

            def train(p, ts, evaluate=evaluate):
                return jax.grad(lambda p: jnp.mean(evaluate(p, ts) ** 2))(p)

            evaluate_jit = jax.jit(evaluate)
            train_jit = jax.jit(train)
            values[name] = (evaluate_jit(params, ts), train_jit(params, ts))
            eqns = count_equations(jax.make_jaxpr(evaluate)(params, ts))
            eqns_train = count_equations(jax.make_jaxpr(train)(params, ts))
            c_eval, t_eval, s_eval = timed(evaluate_jit, params, ts, repeats=repeats)
            c_train, t_train, s_train = timed(train_jit, params, ts, repeats=repeats)
            rows.append(
                dict(
                    order=order,
                    method=name,
                    equations=eqns,
                    equations_train=eqns_train,
                    eval_ms=t_eval,
                    eval_spread_ms=s_eval,
                    train_ms=t_train,
                    train_spread_ms=s_train,
                    compile_s=c_eval + c_train,
                )
            )
        # Correctness before the numbers mean anything.
        ref_eval, ref_train = values["nested forward"]
        for name, (ev, tr) in values.items():
            scale = float(jnp.max(jnp.abs(ref_eval)))
            err = float(jnp.max(jnp.abs(ev - ref_eval))) / scale
            if err > 1e-10:
                raise AssertionError(f"order {order}: {name} differs by {err:.2e}")
            flat, _ = jax.flatten_util.ravel_pytree(tr)
            flat_ref, _ = jax.flatten_util.ravel_pytree(ref_train)
            err = float(jnp.max(jnp.abs(flat - flat_ref)) / jnp.max(jnp.abs(flat_ref)))
            if err > 1e-9:
                raise AssertionError(
                    f"order {order}: gradient by {name} differs by {err:.2e}"
                )

    print(
        f"jax {jax.__version__}, {platform.processor() or platform.machine()}, "
        f"{jax.devices()[0].platform}, {points} points, float64, median of {repeats}"
    )
    print()
    print(
        "| order | method | jaxpr eqns (eval / train) | eval [ms] | "
        "train step [ms] | vs Taylor (train) | compile [s] |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        taylor = next(
            r for r in rows if r["order"] == row["order"] and r["method"] == "taylor"
        )
        print(
            f"| {row['order']} | {row['method']} | {row['equations']} / "
            f"{row['equations_train']} | {row['eval_ms']:.2f} ± "
            f"{row['eval_spread_ms'] / 2:.2f} | {row['train_ms']:.2f} ± "
            f"{row['train_spread_ms'] / 2:.2f} | "
            f"{row['train_ms'] / taylor['train_ms']:.2f}x | {row['compile_s']:.1f} |"
        )
    if json_path is not None:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        from _meta import complete  # benchmarks/_meta.py, beside this script

        out = dict(
            jax=jax.__version__,
            machine=platform.machine(),
            points=points,
            repeats=repeats,
            rows=rows,
        )
        command = (
            f"python benchmarks/derivatives.py --points {points} --repeats "
            f"{repeats} --json {json_path}"
        )
        path.write_text(json.dumps(complete(out, command, repeats), indent=1))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()
    main(points=args.points, repeats=args.repeats, json_path=args.json)
