r"""Loss terms as a named PyTree of weighted residual vectors: public pure functions.

Every term is returned as a vector $r_k$ already weighted so that its loss is
$\lVert r_k \rVert^2 = w_k \operatorname{mean}(\text{raw}_k^2)$ and the total loss is
$\sum_k \lVert r_k \rVert^2$. First-order optimisers differentiate that sum;
least-squares trainers (Gauss–Newton, Levenberg–Marquardt) work on the stacked
vectors directly. One definition serves both, and a hand-written training loop.
"""

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._custom_types import Args, Scalar
from ._derivatives import derivatives
from ._models.base import AbstractModel
from ._observations import Observations
from ._problems import AbstractProblem
from ._unknown import resolve_args

TERMS = ("residual", "conditions", "data")

# A user's loss term: `fn(model, problem, args, ts)` returns a residual vector.
Term = Callable[[AbstractModel, AbstractProblem, Args, Float[Array, " n"]], Array]


def check_terms(terms: Mapping[str, Term] | None) -> dict[str, Term]:
    """Validates `fit`'s `terms`: a mapping of new names to callables."""
    if terms is None:
        return {}
    if not isinstance(terms, Mapping):
        raise TypeError(
            "`terms` must be a mapping of names to functions fn(model, problem, "
            f"args, ts) -> residual vector, got {type(terms).__name__}."
        )
    out = {}
    for name, fn in terms.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"`terms` keys must be non-empty strings, got {name!r}.")
        if name in TERMS or name == "loss":
            raise ValueError(
                f"`terms` has the name {name!r}, which odefit uses itself; choose "
                f"another (odefit's own terms are {TERMS} and their sum 'loss')."
            )
        if not callable(fn):
            raise TypeError(
                f"`terms[{name!r}]` must be a function fn(model, problem, args, ts), "
                f"got {type(fn).__name__}."
            )
        out[name] = fn
    return out


def check_weights(
    weights: Mapping[str, float] | None, terms: Mapping[str, Term] | None = None
) -> dict[str, float]:
    """`weights` completed with 1 for every term it does not name."""
    names = TERMS + tuple(terms or ())
    out = dict.fromkeys(names, 1.0)
    if weights is None:
        return out
    if not isinstance(weights, Mapping):
        raise TypeError(
            f"`weights` must be a mapping such as {{'residual': 1.0, 'data': 10.0}}, "
            f"got {type(weights).__name__}."
        )
    for name, value in weights.items():
        if name not in out:
            raise ValueError(
                f"`weights` has an unknown term {name!r}; the terms are {names}."
            )
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not (value >= 0 and value < float("inf"))
        ):
            raise ValueError(
                f"`weights[{name!r}]` must be a finite number >= 0, got {value!r}."
            )
        out[name] = float(value)
    return out


def predict(model: AbstractModel, ts: Float[Array, " n"]) -> Array:
    """The model's trajectory at `ts`: one call, so that a neural ODE integrates once
    through every observation time instead of once per time."""
    return model.predict(ts)


def _args(problem: AbstractProblem, args: Args | None) -> Args:
    return resolve_args(problem.args) if args is None else args


def physics_residual(
    model: AbstractModel,
    problem: AbstractProblem,
    t: Scalar,
    *,
    args: Args | None = None,
) -> Float[Array, "*state"]:
    r"""The ODE residual of `model` at one time, in the model's units.

    For an `IVP` it is $\bigl(\dot y_\theta(t) - f(t, y_\theta(t))\bigr) / u$, for
    second-order problems $\bigl(\ddot y_\theta - g(t, y_\theta, \dot y_\theta)\bigr)
    / u$, with $u$ = `model.residual_scale() / (t1 - t0)**order`, so that every
    component is O(1) when the fit is good. Time derivatives come from forward
    (Taylor) mode, [`odefit.derivatives`][].

    **Arguments:**

    - `model`: any odefit model that is a differentiable function of `t`.
    - `problem`: the problem.
    - `t`: one time.
    - `args`: the values of the problem's `args` (any [`odefit.Unknown`][]
        replaced by its value); default those of `problem.args`.

    **Returns:** an array of the state's shape.
    """
    units = model.residual_scale()
    if units is None:
        raise ValueError(
            f"A {type(model).__name__} has no physics residual: "
            "`model.residual_scale()` is None (it is fit to data only)."
        )
    derivs = derivatives(model, t, problem.order)
    units = units / (problem.t1 - problem.t0) ** problem.order
    return problem.residual(t, derivs, _args(problem, args)) / units


def _weighted(raw: Array, weight: float) -> Array:
    raw = jnp.ravel(raw)
    return raw * jnp.sqrt(weight / raw.size).astype(raw.dtype)


def loss_terms(
    model: AbstractModel,
    problem: AbstractProblem,
    ts: Float[Array, " n"],
    *,
    args: Args | None = None,
    observations: Observations | None = None,
    weights: Mapping[str, float] | None = None,
    terms: Mapping[str, Term] | None = None,
) -> dict[str, Float[Array, " _"]]:
    r"""The weighted residual vectors of every active loss term, keyed by name.

    A pure function of the model: what [`odefit.fit`][] minimises, exposed so that
    a training loop can be written by hand (see [`odefit.loss`][]). Each vector is
    scaled so that its squared norm is the term's loss,
    $\lVert r_k \rVert^2 = w_k \operatorname{mean}(\text{raw}_k^2)$:

    - `"residual"`: [`odefit.physics_residual`][] at every time of `ts`, for a
        model with a physics residual (`model.residual_scale()` is not `None`);
    - `"conditions"`: the initial/boundary conditions, when the model does not
        build them in (`model.conditions_built_in()` is false);
    - `"data"`: `observe(model(t_j)) - y_j` at the observations;
    - one entry per user term `terms[name](model, problem, args, ts)`.

    A term whose weight is zero is not computed.

    **Arguments:**

    - `model`, `problem`: the ansatz and the problem.
    - `ts`: collocation points, 1-D.
    - `args`: the values of the problem's `args`; default those of
        `problem.args` (with every [`odefit.Unknown`][] at its current value). When
        training unknowns by hand, pass `resolve_args`-style values computed from
        the trained parameters, or train a problem whose args hold the unknowns.
    - `observations`: [`odefit.Observations`][], adding the data term.
    - `weights`: the weight of each term by name; default 1 each.
    - `terms`: extra residual terms, `{name: fn}` with `fn(model, problem, args,
        ts)` returning a residual vector (any shape; it is flattened).

    **Returns:** a dict of 1-D arrays.
    """
    terms = check_terms(terms)
    weights = check_weights(weights, terms)
    args = _args(problem, args)
    out = {}
    if model.residual_scale() is not None and weights["residual"] > 0:
        raw = jax.vmap(lambda t: physics_residual(model, problem, t, args=args))(ts)
        out["residual"] = _weighted(raw, weights["residual"])
        if not model.conditions_built_in():
            scale = jnp.ravel(
                jnp.broadcast_to(model.residual_scale(), problem.state.shape)
            )
            units = jnp.tile(scale, problem.order)
            raw = problem.condition_residuals(model) / units
            out["conditions"] = _weighted(raw, weights["conditions"])
    if observations is not None and weights["data"] > 0:
        pred = predict(model, observations.ts)
        if observations.observe is not None:
            pred = jax.vmap(observations.observe)(pred)
        out["data"] = _weighted(
            pred - observations.ys, observations.weight * weights["data"]
        )
    for name, fn in terms.items():
        if weights[name] > 0:
            out[name] = _weighted(
                jnp.asarray(fn(model, problem, args, ts)), weights[name]
            )
    if not out:
        raise ValueError(
            "Nothing to fit: every loss term is switched off or absent (got "
            f"`weights`={dict(weights)} and "
            f"{'no' if observations is None else 'some'} `observations`)."
        )
    return out


def total_loss(terms: Mapping[str, Array]) -> tuple[Array, dict[str, Array]]:
    """The sum of the terms' squared norms, and each term's."""
    losses = {name: jnp.sum(r**2) for name, r in terms.items()}
    return sum(losses.values()), losses


def loss(
    model: AbstractModel,
    problem: AbstractProblem,
    ts: Float[Array, " n"],
    *,
    args: Args | None = None,
    observations: Observations | None = None,
    weights: Mapping[str, float] | None = None,
    terms: Mapping[str, Term] | None = None,
) -> Scalar:
    r"""The total loss $\sum_k \lVert r_k \rVert^2$ of [`odefit.loss_terms`][]: a pure
    function of the model, to differentiate in a hand-written training loop.

    **Arguments:** as for [`odefit.loss_terms`][].

    **Returns:** a scalar.

    **Example:** the whole training loop by hand, with Equinox and Optax.

    ```python
    import equinox as eqx, jax, jax.numpy as jnp, optax, odefit

    jax.config.update("jax_enable_x64", True)
    problem = odefit.IVP(lambda t, y, args: -y, t0=0.0, t1=1.0, y0=1.0)
    model = odefit.PINN(problem, width=16, depth=2, key=jax.random.key(0))
    ts = jnp.linspace(0.0, 1.0, 64)
    params, static = eqx.partition(model, model.trainable())
    optimizer = optax.adam(1e-3)
    opt_state = optimizer.init(params)

    @eqx.filter_jit
    def step(params, opt_state):
        loss, grads = eqx.filter_value_and_grad(
            lambda p: odefit.loss(eqx.combine(p, static), problem, ts)
        )(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return eqx.apply_updates(params, updates), opt_state, loss

    for _ in range(100):
        params, opt_state, value = step(params, opt_state)
    model = eqx.combine(params, static)
    ```
    """
    return total_loss(
        loss_terms(
            model,
            problem,
            ts,
            args=args,
            observations=observations,
            weights=weights,
            terms=terms,
        )
    )[0]


def point_residual_norms(
    model: AbstractModel, problem: AbstractProblem, args: Args, ts: Float[Array, " n"]
) -> Float[Array, " n"]:
    """The size of the physics residual at each point (for adaptive collocation)."""
    if model.residual_scale() is None:
        return jnp.zeros(ts.shape, ts.dtype)
    r = jax.vmap(lambda t: physics_residual(model, problem, t, args=args))(ts)
    return jnp.sqrt(jnp.sum(r.reshape(ts.shape[0], -1) ** 2, axis=1))
