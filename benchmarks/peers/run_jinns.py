"""jinns's runner, in its own environment (`.venvs/jinns`), float64 (odefit's
comparison mode, `recipe64`, and the precision jinns's ODE notebooks set),
following jinns's ODE notebooks (mia-jinns/jinns):

- forward problems: Notebooks/ODE/linear_fo_equation.ipynb and
  Notebooks/ODE/1D_Generalized_Lotka_Volterra.ipynb: time rescaled to [0, 1]
  with the factor `Tmax` in a `jinns.loss.ODE` dynamic loss, a
  `jinns.nn.PINN_MLP` 1-20-20-outputs with tanh, 320 uniform times
  (`jinns.data.DataGeneratorODE`), `jinns.loss.LossODE` with unit weights, and
  the notebooks' optimiser, `jinns.optimizers.vanilla_ngd()` (natural gradient
  with a backtracking line search), through `jinns.solve`;
- the inverse problem: the joint estimation of
  Notebooks/Tutorials/tuto_GLV_inverse_problem.ipynb (equation parameters in
  `Params.eq_params`, differentiated through the dynamic loss by
  `DerivativeKeysODE`, observations by `DataGeneratorObservations`, Adam 1e-3,
  1000 uniform times), without its pretraining stage and alternating optimiser
  (plain joint Adam, the "vanilla" estimation of jinns's joint-estimation
  notebooks).

Deviations: `LossODE` constrains values only, so the second-order IVPs are
written as first-order systems (u, u'); the BVP uses `LossODE`'s conditions at
several times (jinns >= 1.5.1), u(0) = u(1) = 0, with the second derivative
taken by `jax.grad` twice. The error is recorded, and the run stopped at the
budget, from inside one `jinns.solve` call by a validation module (jinns's
documented hook, called every step) that calls back to the host clock; the
error itself is evaluated only at the marks, with the clock stopped.

    .venvs/jinns/bin/python benchmarks/peers/run_jinns.py --problem damped
"""

import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import common  # noqa: E402
import problems  # noqa: E402


def main(argv=None):
    args = common.parser(__doc__.splitlines()[0]).parse_args(argv)
    import jax

    jax.config.update("jax_enable_x64", True)
    from importlib.metadata import version as _version

    import equinox as eqx
    import jax.experimental
    import jax.numpy as jnp
    import jinns
    import jinns.validation
    import numpy as np
    import optax

    spec = problems.problem(args.problem)
    ref = problems.reference(args.problem)
    name = args.problem
    t0, t1 = spec["t0"], spec["t1"]
    T = t1 - t0
    inverse = "true_params" in spec
    second = spec["order"] == 2 and not spec.get("bvp")
    n_out = 2 if second else ref["ys"].shape[1]
    key = jax.random.key(args.seed)
    key, k_net, k_data, k_obs = jax.random.split(key, 4)

    width = 20
    eqx_list = (
        (eqx.nn.Linear, 1, width),
        (jax.nn.tanh,),
        (eqx.nn.Linear, width, width),
        (jax.nn.tanh,),
        (eqx.nn.Linear, width, n_out),
    )
    u, nn_params = jinns.nn.PINN_MLP.create(key=k_net, eqx_list=eqx_list, eq_type="ODE")
    eq_params = {"T": jnp.array(T)}
    if inverse:
        for k, g in zip("abcd", spec["guess"], strict=True):
            eq_params[k] = jnp.array(g)
    init_params = jinns.parameters.Params(nn_params=nn_params, eq_params=eq_params)

    def field(t, y, p):
        """The right-hand side in physical time (first order, or the system)."""
        if name == "lagaris1":
            q = (1 + 3 * t**2) / (1 + t + t**3)
            return t**3 + 2 * t + t**2 * q - (t + q) * y
        if name == "logistic":
            return y * (1 - y)
        if name == "lotka_volterra":
            return jnp.stack([y[0] - y[0] * y[1], -y[1] + y[0] * y[1]])
        if name == "inverse_lotka_volterra":
            a, b, c, d = p.a, p.b, p.c, p.d
            return jnp.stack([a * y[0] - b * y[0] * y[1], -c * y[1] + d * y[0] * y[1]])
        if name == "damped":
            return jnp.stack([y[1], -4 * y[1] - 400 * y[0]])
        if name == "pendulum":
            return jnp.stack([y[1], -jnp.sin(y[0])])
        if name == "harmonic_long":
            return jnp.stack([y[1], -y[0]])
        raise ValueError(name)

    class Dynamics(jinns.loss.ODE):
        def equation(self, t, u, params):
            s = t[0]
            if spec.get("bvp"):  # Bratu: u'' + exp(u) = 0 (T = 1)
                v = lambda x: u(jnp.reshape(x, (1,)), params)[0]
                d2v = jax.grad(jax.grad(v))(s)
                return jnp.reshape(d2v + self.Tmax**2 * jnp.exp(v(s)), (1,))
            du = jax.jacfwd(lambda x: u(x, params))(t)[:, 0]
            y = u(t, params)
            return du - self.Tmax * field(t0 + s * self.Tmax, y, params.eq_params)

    dynamic_loss = Dynamics(Tmax=T)
    if spec.get("bvp"):
        condition = (jnp.array([[0.0], [1.0]]), jnp.array([spec["y0"], spec["y1"]]))
    elif second:
        condition = (0.0, jnp.array(spec["y0"] + spec["dy0"]))
    else:
        condition = (0.0, jnp.array(spec["y0"]))

    nt = 1000 if inverse else 320
    data = jinns.data.DataGeneratorODE(
        key=k_data, nt=nt, tmin=0.0, tmax=1.0, method="uniform"
    )
    obs_data = None
    loss_kwargs = {}
    if inverse:
        weights = jinns.loss.LossWeightsODE(
            dyn_loss=1.0, initial_condition=1.0, observations=1.0
        )
        obs_data = jinns.data.DataGeneratorObservations(
            key=k_obs,
            obs_batch_size=None,
            observed_pinn_in=jnp.asarray((ref["obs_ts"] - t0) / T).reshape(-1, 1),
            observed_values=jnp.asarray(ref["obs_ys"]),
        )
        loss_kwargs["derivative_keys"] = jinns.parameters.DerivativeKeysODE.from_str(
            dyn_loss=jinns.parameters.Params(
                nn_params=True, eq_params={k: k != "T" for k in eq_params}
            ),
            initial_condition="nn_params",
            observations="nn_params",
            params=init_params,
        )
        optimizer = optax.adam(learning_rate=1e-3)
        optimizer_name = "adam 1e-3"
    else:
        weights = jinns.loss.LossWeightsODE(dyn_loss=1.0, initial_condition=1.0)
        # The notebooks' vanilla_ngd() with its default line search, not verbose.
        optimizer = jinns.optimizers.vanilla_ngd(
            linesearch=optax.scale_by_backtracking_linesearch(max_backtracking_steps=15)
        )
        optimizer_name = "vanilla_ngd"
    loss = jinns.loss.LossODE(
        u=u,
        loss_weights=weights,
        dynamic_loss=dynamic_loss,
        initial_condition=condition,
        params=init_params,
        **loss_kwargs,
    )

    s_eval = jnp.asarray((ref["ts"] - t0) / T).reshape(-1, 1)

    def predict(p):
        out = jax.vmap(lambda s: u(s, p))(s_eval)
        return out[:, :1] if second else out

    state = {"pred": None}
    rec = common.Recorder(args.budget, lambda: state["pred"], ref["ys"])

    def tick(_):
        """Host side, after each step: stop the clock; is a mark passed?"""
        rec.train_time += time.perf_counter() - rec._started
        rec.steps += 1
        return np.bool_(rec.train_time >= rec.next_mark or rec.done)

    def record(flag, pred):
        """Host side: record the error if a mark was passed, restart the clock."""
        if flag:
            state["pred"] = np.asarray(pred)
            rec.record()
        rec.start()
        return np.bool_(rec.done)

    class Clock(jinns.validation.AbstractValidationModule):
        """Times the run and records the error from inside `jinns.solve`'s loop,
        and stops it at the budget (jinns's validation hook, called each step)."""

        call_every: int = 1

        def __call__(self, params):
            anchor = sum(jnp.sum(x) for x in jax.tree.leaves(params.nn_params))
            flag = jax.experimental.io_callback(
                tick, jax.ShapeDtypeStruct((), jnp.bool_), anchor
            )
            pred = jax.lax.cond(
                flag,
                predict,
                lambda p: jnp.zeros(ref["ys"].shape, s_eval.dtype),
                params,
            )
            stop = jax.experimental.io_callback(
                record, jax.ShapeDtypeStruct((), jnp.bool_), flag, pred
            )
            return self, stop, jnp.asarray(0.0, s_eval.dtype), False

    state["pred"] = np.asarray(predict(init_params))
    rec.record()
    rec.start()
    out = jinns.solve(
        n_iter=10**6,
        init_params=init_params,
        data=data,
        loss=loss,
        optimizer=optimizer,
        obs_data=obs_data,
        validation=Clock(),
        verbose=False,
    )
    params = out[0]
    jax.block_until_ready(params)
    state["pred"] = np.asarray(predict(params))
    rec.finish()
    row = {
        "problem": name,
        "library": "jinns",
        "mode": "tutorial",
        "version": _version("jinns"),
        "jax": jax.__version__,
        "status": "ok",
        "budget": args.budget,
        "settings": {
            "precision": "float64",
            "net": f"PINN_MLP 1-{width}-{width}-{n_out} tanh",
            "optimizer": optimizer_name,
            "points": nt,
        },
        **rec.summary(),
    }
    if inverse:
        found = [float(getattr(params.eq_params, k)) for k in "abcd"]
        row["parameters"] = found
        row["parameter_error"] = max(
            abs(f - t) / abs(t) for f, t in zip(found, spec["true_params"], strict=True)
        )
    common.emit(row, args.out)


if __name__ == "__main__":
    main()
