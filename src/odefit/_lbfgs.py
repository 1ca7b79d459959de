r"""The L-BFGS trainer: a quasi-Newton method whose line search evaluates the loss
and its gradient at exactly one place in the compiled program.

A line search written as "evaluate at the start, then evaluate in a loop (one
branch to bracket, another to zoom)" puts the loss and its gradient into the
program several times, and each copy is compiled separately. For a network that
is cheap to differentiate this costs little; for a neural ODE each copy is a
differentiated adaptive solve, seconds of compilation. Here one `while_loop`
iteration is one evaluation: the first at the current parameters (which gives
the step's loss and the search direction), the following ones at trial points.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from . import _memory
from ._collocation import _check_count, _check_points
from ._least_squares import _ravel
from ._trainers import AbstractGridTrainer, total_loss
from ._validate import INT32_MAX, check_float, check_int


def _check_fraction(value, name: str) -> float:
    return check_float(
        value,
        name,
        0.0,
        1.0,
        open_minimum=True,
        open_maximum=True,
        what="a number in (0, 1)",
    )


def _direction(grad: Array, s: Array, y: Array, rho: Array, newest) -> Array:
    """$-H g$ by the two-loop recursion over the stored pairs (rows of `s`, `y`;
    `rho` = 1/(s·y), 0 for an empty slot, which then contributes nothing).
    `newest` is the slot of the most recent pair."""
    memory = s.shape[0]
    order = (newest - jnp.arange(memory, dtype=jnp.int32)) % memory  # newest first

    def backward(q, i):
        a = rho[i] * jnp.dot(s[i], q)
        return q - a * y[i], a

    q, alphas = jax.lax.scan(backward, grad, order)
    # The initial inverse Hessian γI, γ = s·y / y·y of the newest pair.
    yy = jnp.dot(y[newest], y[newest])
    gamma = jnp.where((rho[newest] > 0) & (yy > 0), 1 / (rho[newest] * yy), 1.0)

    def forward(r, ia):
        i, a = ia
        b = rho[i] * jnp.dot(y[i], r)
        return r + (a - b) * s[i], None

    r, _ = jax.lax.scan(forward, gamma * q, (order[::-1], alphas[::-1]))
    return -r


class LBFGS(AbstractGridTrainer):
    r"""Limited-memory BFGS with a weak-Wolfe line search, each step one compiled
    loop with a single evaluation of the loss and its gradient.

    Each step computes the direction $d = -H g$ from the last `memory` pairs
    $(s_k, y_k)$ of steps and gradient changes (the two-loop recursion, with the
    initial inverse Hessian scaled by $s^\top y / y^\top y$), then searches along
    it for a step length $\alpha$ that satisfies the weak Wolfe conditions

    $$L(\theta + \alpha d) \le L(\theta) + c_1 \alpha\, g^\top d, \qquad
      \nabla L(\theta + \alpha d)^\top d \ge c_2\, g^\top d,$$

    starting from $\alpha = 1$ (on the first step, $1/\lVert g \rVert$ when the
    gradient is larger than one). A trial that fails the first (or whose loss is
    not finite) becomes the upper end of a bracket and the next trial minimises
    the quadratic through the lower end's value and slope and the trial's value,
    kept inside the bracket; a trial that passes the first and fails the second
    becomes the lower end, and the step doubles until a bracket exists. A pair is
    stored only when $s^\top y > 0$, so the inverse Hessian stays positive
    definite. If no trial is accepted within `line_search` evaluations the step
    goes to the lowest accepted-by-decrease point found, or, if there is none,
    the parameters are kept and the memory is cleared (the next step starts along
    $-g$).

    Compared with `optax.lbfgs()` (zoom line search for the strong Wolfe
    conditions) this takes the same kind of steps, but the loss and its gradient
    are compiled once per program instead of three times. For a neural ODE, whose
    loss is a differentiated adaptive solve, that is most of the compilation: the
    neural ODE example's first `fit` call compiled in 9.7 s on a 2-core CPU
    (`benchmarks/results/compile_time.json`).

    Like the least-squares trainers, it needs the same objective from step to step:
    its default collocation is fixed, `odefit.Grid(points)`.

    Extra history entries: `"step_size"` ($\alpha$; 0 when no step was taken) and
    `"evaluations"` (loss and gradient evaluations in the step, the first at the
    current parameters included).

    **Arguments:**

    - `memory`: the number of stored pairs.
    - `line_search`: the most evaluations per step (at least 2: the current point
        and one trial).
    - `armijo`: $c_1$, the sufficient-decrease fraction.
    - `curvature`: $c_2$, the curvature fraction ($c_1 < c_2 < 1$).
    - `points`: the size of the default collocation, `odefit.Grid(points)`.

    **Example:**

    ```python
    import jax, odefit

    problem = odefit.IVP(lambda t, y, args: -2.0 * y, t0=0.0, t1=2.0, y0=1.0)
    model = odefit.PINN(problem, width=20, depth=2, key=jax.random.key(0))
    result = odefit.fit(problem, model, steps=200, optimizer=odefit.LBFGS(),
                        key=jax.random.key(1), progress=False)
    ```

    **References:** Nocedal, "Updating quasi-Newton matrices with limited storage"
    (1980), https://doi.org/10.1090/S0025-5718-1980-0572855-7; Lewis & Overton,
    "Nonsmooth optimization via quasi-Newton methods" (2013), Section 4.2 (the
    bracketing weak-Wolfe search).
    """

    memory: int = eqx.field(static=True)
    line_search: int = eqx.field(static=True)
    armijo: float = eqx.field(static=True)
    curvature: float = eqx.field(static=True)
    points: int = eqx.field(static=True)

    def __init__(
        self,
        memory: int = 10,
        *,
        line_search: int = 20,
        armijo: float = 1e-4,
        curvature: float = 0.9,
        points: int = 256,
    ):
        # The slot index is an int32; each slot holds at least one parameter of
        # `s` and `y` and a `rho` (checked against the real count in `init`).
        self.memory = check_int(memory, "memory", 1, INT32_MAX)
        _memory.check_bytes(
            3.0 * self.memory * _memory.itemsize(),
            "memory",
            f"an L-BFGS history of {self.memory} pairs",
        )
        self.line_search = _check_count(line_search, "line_search", 2)
        self.armijo = _check_fraction(armijo, "armijo")
        self.curvature = _check_fraction(curvature, "curvature")
        if not self.armijo < self.curvature:
            raise ValueError(
                "`armijo` must be smaller than `curvature`, got armijo="
                f"{self.armijo} and curvature={self.curvature}."
            )
        self.points = _check_points(points, "points")

    def init(self, residuals_fn, params) -> dict[str, Array]:
        flat = _ravel(params)[0]
        n, dtype = flat.shape[0], flat.dtype
        _memory.check_bytes(
            (2.0 * n + 1) * self.memory * dtype.itemsize,
            "memory",
            f"an L-BFGS history of {self.memory} pairs of {n} parameters",
        )
        return {
            "s": jnp.zeros((self.memory, n), dtype),
            "y": jnp.zeros((self.memory, n), dtype),
            "rho": jnp.zeros((self.memory,), dtype),
            "newest": jnp.asarray(self.memory - 1, jnp.int32),
            "steps": jnp.asarray(0, jnp.int32),
        }

    def step(self, residuals_fn, params, state):
        flat, unravel = _ravel(params)
        dtype = flat.dtype
        zero, one = jnp.zeros((), dtype), jnp.ones((), dtype)

        def loss_fn(f):
            return total_loss(residuals_fn(unravel(f)))

        value_and_grad = jax.value_and_grad(loss_fn, has_aux=True)
        # The per-term losses' structure, for the loop's carry (a forward trace).
        _, losses_shape = jax.eval_shape(loss_fn, flat)
        no_losses = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), losses_shape)
        c1, c2 = self.armijo, self.curvature

        # Carry: evaluations so far; the base point's loss, per-term losses,
        # gradient, direction and slope g·d; the bracket [lo, hi] with the
        # loss, slope and gradient at lo; the next trial α; done.
        def cond(c):
            return ~c["done"]

        def body(c):
            first = c["evaluations"] == 0
            (f, losses), g = value_and_grad(flat + c["alpha"] * c["d"])
            finite = jnp.isfinite(f) & jnp.all(jnp.isfinite(g))

            # The first evaluation: the current point and the direction.
            d = _direction(g, state["s"], state["y"], state["rho"], state["newest"])
            slope = jnp.dot(g, d)
            # Not a descent direction (rounding in a stale memory): along -g.
            d = jnp.where(slope < 0, d, -g)
            slope = jnp.where(slope < 0, slope, -jnp.dot(g, g))
            gnorm = jnp.linalg.norm(g)
            alpha0 = jnp.where(
                (state["steps"] == 0) & (gnorm > 1), 1 / gnorm, one
            ).astype(dtype)
            start = dict(
                c,
                f0=f,
                losses0=losses,
                g0=g,
                d=d,
                slope0=slope,
                f_lo=f,
                slope_lo=slope,
                g_lo=g,
                alpha=alpha0,
                # A zero gradient or a non-finite loss here: nothing to search.
                done=~finite | (slope == 0),
            )

            # A trial at α.
            alpha = c["alpha"]
            slope_t = jnp.dot(g, c["d"])
            decrease = finite & (f <= c["f0"] + c1 * alpha * c["slope0"])
            flat_enough = slope_t >= c2 * c["slope0"]
            accept = decrease & flat_enough
            lo = jnp.where(decrease, alpha, c["lo"])
            hi = jnp.where(decrease, c["hi"], alpha)
            bracketed = c["bracketed"] | ~decrease
            f_lo = jnp.where(decrease, f, c["f_lo"])
            slope_lo = jnp.where(decrease, slope_t, c["slope_lo"])
            g_lo = jnp.where(decrease, g, c["g_lo"])
            # Next trial: the minimiser of the quadratic through (lo, f_lo,
            # slope_lo) and (hi, f_hi) when the trial failed the decrease, else
            # the middle of the bracket, or twice as far without a bracket.
            width = hi - lo
            curv = (f - f_lo - slope_lo * width) / width**2
            quad = lo - slope_lo / (2 * curv)
            quad = jnp.where(
                finite & (curv > 0) & jnp.isfinite(quad), quad, lo + width / 2
            )
            inside = jnp.clip(quad, lo + 0.1 * width, hi - 0.1 * width)
            next_alpha = jnp.where(
                ~decrease, inside, jnp.where(bracketed, lo + width / 2, 2 * alpha)
            )
            trial = dict(
                c,
                lo=lo,
                hi=hi,
                bracketed=bracketed,
                f_lo=f_lo,
                slope_lo=slope_lo,
                g_lo=g_lo,
                alpha=jnp.where(accept, alpha, next_alpha),
                done=accept,
            )
            new = jax.tree.map(lambda a, b: jnp.where(first, a, b), start, trial)
            new["evaluations"] = c["evaluations"] + 1
            new["done"] = new["done"] | (new["evaluations"] >= self.line_search)
            return new

        n = flat.shape[0]
        carry = {
            "evaluations": jnp.asarray(0, jnp.int32),
            "f0": zero,
            "losses0": no_losses,
            "g0": jnp.zeros((n,), dtype),
            "d": jnp.zeros((n,), dtype),
            "slope0": zero,
            "lo": zero,
            "hi": jnp.asarray(math.inf, dtype),
            "bracketed": jnp.asarray(False),
            "f_lo": zero,
            "slope_lo": zero,
            "g_lo": jnp.zeros((n,), dtype),
            "alpha": zero,
            "done": jnp.asarray(False),
        }
        c = jax.lax.while_loop(cond, body, carry)

        # The accepted step, or else the longest trial that passed the decrease
        # test (lo = 0 when none did). Either is the bracket's lower end.
        alpha = c["lo"]
        s = alpha * c["d"]
        y = c["g_lo"] - c["g0"]
        sy = jnp.dot(s, y)
        moved = alpha > 0
        store = moved & (sy > 1e-10 * jnp.dot(y, y))
        slot = (state["newest"] + 1) % self.memory
        rho = jnp.where(store, 1 / jnp.where(store, sy, one), zero)
        new_state = {
            "s": jnp.where(store, state["s"].at[slot].set(s), state["s"]),
            "y": jnp.where(store, state["y"].at[slot].set(y), state["y"]),
            "rho": jnp.where(
                store,
                state["rho"].at[slot].set(rho),
                # A failed search clears the memory: next step along -g.
                jnp.where(moved, state["rho"], jnp.zeros_like(state["rho"])),
            ),
            "newest": jnp.where(store, slot, state["newest"]).astype(jnp.int32),
            "steps": state["steps"] + 1,
        }
        stats = {
            "loss": c["f0"],
            **c["losses0"],
            "step_size": alpha,
            "evaluations": c["evaluations"].astype(dtype),
        }
        return unravel(flat + s), new_state, stats
