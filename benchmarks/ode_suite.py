"""The ODE suite of `tolerance_suite.py`: 22 problems from textbooks, peer PINN
libraries' tests and examples, and papers.

Each entry builds its odefit problem for a dtype, and gives either an exact
solution (a function of one scalar time) or, where none is known, the classical
reference `problem.solve(ts)` (Tsit5, rtol 1e-11 / atol 1e-12 in float64), which
`tests/test_ode_suite.py` checks against a second solve with another solver
(Dopri5) at rtol 1e-13 / atol 1e-14. Inverse problems carry `odefit.Unknown`
entries in `args`, the true values, and noise-free observations of the true
solution at times drawn with a fixed seed.

Intervals and parameters are chosen so that a PINN is reasonable: a few
oscillations at most, except the two problems whose kind is "long horizon".

The problems, where a source is a peer library it is cited by repository and path
(the equations are restated here, no code is copied).
"""

import dataclasses
import math
from collections.abc import Callable

import diffrax as dfx
import jax
import jax.numpy as jnp
import jax.random as jr

import odefit

# Seeds of the observation times of the inverse problems.
OBSERVATION_SEED = 2026


@dataclasses.dataclass(frozen=True)
class SuiteProblem:
    """One entry of the suite.

    - `build(dtype)`: the odefit problem to fit (for an inverse problem, with
      `odefit.Unknown` entries in `args`).
    - `truth(dtype)`: the problem with the true arguments (default `build`).
    - `exact`: the exact solution, `exact(t) -> y` for one scalar `t`; `None` when
      the reference is a diffrax solve.
    - `true_args`: the true values of the unknowns (inverse problems), in the
      order of the flattened `args`.
    - `observations`: `(number, dtype) -> odefit.Observations` (inverse problems).
    """

    name: str
    kind: str
    source: str
    build: Callable
    exact: Callable | None = None
    truth: Callable | None = None
    true_args: tuple | None = None
    n_observations: int = 0

    @property
    def inverse(self) -> bool:
        return self.true_args is not None

    def true_problem(self, dtype):
        return (self.truth or self.build)(dtype)

    def reference(self, ts):
        """The reference on `ts`: the exact solution, else the diffrax solve."""
        if self.exact is not None:
            return jax.vmap(self.exact)(ts)
        return self.true_problem(ts.dtype).solve(ts)

    def verification(self, ts):
        """A second, independent reference: Dopri5 at tighter tolerances."""
        return self.true_problem(ts.dtype).solve(
            ts, solver=dfx.Dopri5(), rtol=1e-13, atol=1e-14
        )

    def observations(self, dtype):
        """Noise-free observations of the true solution at `n_observations` times
        drawn uniformly with a fixed seed (sorted)."""
        problem = self.true_problem(dtype)
        key = jr.key(OBSERVATION_SEED)
        ts = jnp.sort(
            jr.uniform(
                key,
                (self.n_observations,),
                dtype=dtype,
                minval=problem.t0,
                maxval=problem.t1,
            )
        )
        return odefit.Observations(ts, self.reference(ts))


def _a(x, dtype):
    return jnp.asarray(x, dtype)


# ------------------------------------------------------------ scalar first order


def _decay(dtype):
    return odefit.IVP(lambda t, y, args: -y, 0.0, 2.0, _a(1.0, dtype))


def _logistic(dtype):
    return odefit.IVP(lambda t, y, args: y * (1.0 - y), 0.0, 10.0, _a(0.1, dtype))


def _lagaris_rhs(t, y, args):
    q = (1.0 + 3.0 * t**2) / (1.0 + t + t**3)
    return t**3 + 2.0 * t + t**2 * q - (t + q) * y


def _lagaris(dtype):
    return odefit.IVP(_lagaris_rhs, 0.0, 1.0, _a(1.0, dtype))


def _riccati(dtype):
    return odefit.IVP(lambda t, y, args: y**2, 0.0, 0.9, _a(1.0, dtype))


def _tan(dtype):
    return odefit.IVP(lambda t, y, args: 1.0 + y**2, 0.0, 1.4, _a(0.0, dtype))


def _gaussian(dtype):
    return odefit.IVP(lambda t, y, args: -2.0 * t * y, 0.0, 3.0, _a(1.0, dtype))


# ------------------------------------------------------------------------ systems


def _circle_field(t, y, args):
    return jnp.stack([y[1], -y[0]])


def _circle(dtype):
    return odefit.IVP(_circle_field, 0.0, 10.0, _a([0.0, 1.0], dtype))


def _lv_field(t, y, args):
    a, b, c, d = args
    return jnp.stack([a * y[0] - b * y[0] * y[1], -c * y[1] + d * y[0] * y[1]])


def _rates(values, dtype):
    # Arrays rather than Python floats, so that the reference solves of every
    # Lotka-Volterra problem share one compilation.
    return tuple(v if isinstance(v, odefit.Unknown) else _a(v, dtype) for v in values)


def _lotka_volterra(t1):
    def build(dtype):
        return odefit.IVP(
            _lv_field,
            0.0,
            t1,
            _a([1.5, 1.0], dtype),
            args=_rates((1.0, 1.0, 1.0, 1.0), dtype),
        )

    return build


def _vdp_field(t, y, args):
    return jnp.stack([y[1], (1.0 - y[0] ** 2) * y[1] - y[0]])


def _van_der_pol(dtype):
    return odefit.IVP(_vdp_field, 0.0, 10.0, _a([2.0, 0.0], dtype))


def _lorenz_field(t, y, args):
    return jnp.stack(
        [
            10.0 * (y[1] - y[0]),
            y[0] * (15.0 - y[2]) - y[1],
            y[0] * y[1] - (8.0 / 3.0) * y[2],
        ]
    )


def _lorenz(dtype):
    return odefit.IVP(_lorenz_field, 0.0, 3.0, _a([-8.0, 7.0, 27.0], dtype))


def _sir_field(t, y, args):
    s, i, _ = y[0], y[1], y[2]
    return jnp.stack([-2.0 * s * i, 2.0 * s * i - 0.5 * i, 0.5 * i])


def _sir(dtype):
    return odefit.IVP(_sir_field, 0.0, 15.0, _a([0.99, 0.01, 0.0], dtype))


# ------------------------------------------------------------------- second order


def _harmonic(t1):
    def build(dtype):
        return odefit.SecondOrderIVP(
            lambda t, y, dy, args: -y, 0.0, t1, _a(0.0, dtype), _a(1.0, dtype)
        )

    return build


def _deepxde_2nd(dtype):
    return odefit.SecondOrderIVP(
        lambda t, y, dy, args: 10.0 * dy - 9.0 * y + 5.0 * t,
        0.0,
        0.25,
        _a(-1.0, dtype),
        _a(2.0, dtype),
    )


MOSELEY_D, MOSELEY_W0 = 2.0, 20.0


def _damped(dtype):
    d, w0 = MOSELEY_D, MOSELEY_W0
    return odefit.SecondOrderIVP(
        lambda t, y, dy, args: -2.0 * d * dy - w0**2 * y,
        0.0,
        1.0,
        _a(1.0, dtype),
        _a(0.0, dtype),
    )


def _damped_exact(d, w0):
    omega = math.sqrt(w0**2 - d**2)

    def exact(t):
        return jnp.exp(-d * t) * (jnp.cos(omega * t) + d / omega * jnp.sin(omega * t))

    return exact


def _pendulum(dtype):
    return odefit.SecondOrderIVP(
        lambda t, y, dy, args: -jnp.sin(y), 0.0, 10.0, _a(1.0, dtype), _a(0.0, dtype)
    )


# --------------------------------------------------------------------------- BVPs


def _poisson_sin(dtype):
    return odefit.BVP(
        lambda t, y, dy, args: -(jnp.pi**2) * jnp.sin(jnp.pi * t),
        -1.0,
        1.0,
        _a(0.0, dtype),
        _a(0.0, dtype),
    )


def _oscillator_bvp(dtype):
    return odefit.BVP(
        lambda t, y, dy, args: -y, 0.0, 1.5 * math.pi, _a(0.0, dtype), _a(-1.0, dtype)
    )


def _bratu_theta() -> float:
    """The smaller root of theta = sqrt(2) cosh(theta / 4) (Bratu, lambda = 1)."""
    theta = 1.0
    for _ in range(50):
        g = theta - math.sqrt(2.0) * math.cosh(theta / 4)
        dg = 1.0 - math.sqrt(2.0) / 4 * math.sinh(theta / 4)
        theta -= g / dg
    return theta


BRATU_THETA = _bratu_theta()


def _bratu(dtype):
    return odefit.BVP(
        lambda t, y, dy, args: -jnp.exp(y), 0.0, 1.0, _a(0.0, dtype), _a(0.0, dtype)
    )


def _bratu_exact(t):
    th = BRATU_THETA
    return -2.0 * jnp.log(jnp.cosh((t - 0.5) * th / 2) / math.cosh(th / 4))


LAYER_EPS = 0.05


def _boundary_layer(dtype):
    return odefit.BVP(
        lambda t, y, dy, args: -dy / LAYER_EPS,
        0.0,
        1.0,
        _a(0.0, dtype),
        _a(1.0, dtype),
    )


def _boundary_layer_exact(t):
    return -jnp.expm1(-t / LAYER_EPS) / -math.expm1(-1.0 / LAYER_EPS)


# ------------------------------------------------------------------------ inverse

DECAY_RATE = 0.7


def _inverse_decay_field(t, y, args):
    (k,) = args
    return -k * y


def _inverse_decay(guess):
    def build(dtype):
        return odefit.IVP(_inverse_decay_field, 0.0, 4.0, _a(1.0, dtype), args=guess)

    return build


DAMPING, STIFFNESS = 0.4, 4.0


def _inverse_damped(guess):
    def build(dtype):
        return odefit.SecondOrderIVP(
            lambda t, y, dy, args: -args[0] * dy - args[1] * y,
            0.0,
            5.0,
            _a(1.0, dtype),
            _a(0.0, dtype),
            args=guess,
        )

    return build


LV_TRUE = (1.5, 1.0, 3.0, 1.0)


def _inverse_lv(guess):
    def build(dtype):
        return odefit.IVP(
            _lv_field, 0.0, 5.0, _a([1.0, 1.0], dtype), args=_rates(guess, dtype)
        )

    return build


def _unknowns(values):
    # The Unknown takes its dtype from the value; float() keeps it weak so that it
    # follows the problem's dtype in float32 and float64 alike.
    return tuple(odefit.Unknown(float(v), positive=True) for v in values)


PROBLEMS = [
    SuiteProblem(
        "decay",
        "scalar IVP",
        "exponential decay u' = -u, u(0) = 1 on [0, 2] (textbook; the interval and "
        "condition of NeuroDiffEq's basic test, which solves u' = u: "
        "NeuroDiffGym/neurodiffeq, tests/test_ode.py::test_ode)",
        _decay,
        exact=lambda t: jnp.exp(-t),
    ),
    SuiteProblem(
        "logistic",
        "scalar IVP",
        "Verhulst logistic growth, r = K = 1, y0 = 0.1 on [0, 10] (textbook; jinns "
        "treats Verhulst growth in mia-jinns/jinns, Notebooks/ODE/MS_model_Verhulst"
        ".ipynb)",
        _logistic,
        exact=lambda t: 1.0 / (1.0 + 9.0 * jnp.exp(-t)),
    ),
    SuiteProblem(
        "lagaris1",
        "scalar IVP",
        "Lagaris, Likas & Fotiadis (1998), IEEE TNN 9(5), problem 1: "
        "y' + (t + (1+3t²)/(1+t+t³)) y = t³ + 2t + t²(1+3t²)/(1+t+t³), y(0) = 1 "
        "on [0, 1]",
        _lagaris,
        exact=lambda t: jnp.exp(-(t**2) / 2) / (1.0 + t + t**3) + t**2,
    ),
    SuiteProblem(
        "gaussian",
        "scalar IVP (non-autonomous)",
        "y' = -2ty, y(0) = 1 on [0, 3], y = exp(-t²) (textbook, separable)",
        _gaussian,
        exact=lambda t: jnp.exp(-(t**2)),
    ),
    SuiteProblem(
        "riccati_blowup",
        "blow-up-like growth",
        "y' = y², y(0) = 1 on [0, 0.9] (blows up at t = 1; y(0.9) = 10) (textbook)",
        _riccati,
        exact=lambda t: 1.0 / (1.0 - t),
    ),
    SuiteProblem(
        "tan_blowup",
        "blow-up-like growth",
        "y' = 1 + y², y(0) = 0 on [0, 1.4] (tan, blows up at pi/2; y(1.4) = 5.8) "
        "(textbook)",
        _tan,
        exact=jnp.tan,
    ),
    SuiteProblem(
        "circle",
        "system, oscillatory",
        "DeepXDE: y1' = y2, y2' = -y1 on [0, 10], (sin, cos) "
        "(lululxvi/deepxde, examples/pinn_forward/ode_system.py)",
        _circle,
        exact=lambda t: jnp.stack([jnp.sin(t), jnp.cos(t)]),
    ),
    SuiteProblem(
        "lotka_volterra",
        "system, oscillatory",
        "NeuroDiffEq test: Lotka-Volterra, all rates 1, (1.5, 1) on [0, 12] "
        "(NeuroDiffGym/neurodiffeq, tests/test_ode.py::test_lotka_volterra and "
        "docs/intro.ipynb)",
        _lotka_volterra(12.0),
    ),
    SuiteProblem(
        "van_der_pol",
        "system, oscillatory (nonlinear)",
        "Van der Pol mu = 1, (2, 0) on [0, 10] (Hairer, Norsett & Wanner, "
        "Solving ODEs I)",
        _van_der_pol,
    ),
    SuiteProblem(
        "lorenz",
        "system (3 states)",
        "DeepXDE: Lorenz sigma = 10, rho = 15, beta = 8/3, (-8, 7, 27) on [0, 3] "
        "(lululxvi/deepxde, examples/pinn_inverse/Lorenz_inverse.py; here forward)",
        _lorenz,
    ),
    SuiteProblem(
        "sir",
        "system (3 states)",
        "Kermack-McKendrick SIR, beta = 2, gamma = 0.5, (0.99, 0.01, 0) on [0, 15] "
        "(textbook; NeuroDiffEq's SIR/SEIR examples use the same model)",
        _sir,
    ),
    SuiteProblem(
        "harmonic",
        "second order, oscillatory",
        "NeuroDiffEq test: y'' = -y, y(0) = 0, y'(0) = 1 on [0, 2 pi] "
        "(NeuroDiffGym/neurodiffeq, tests/test_ode.py::test_ode_ivp)",
        _harmonic(2 * math.pi),
        exact=jnp.sin,
    ),
    SuiteProblem(
        "deepxde_2nd",
        "second order (fast growth)",
        "DeepXDE: y'' - 10y' + 9y = 5t, y(0) = -1, y'(0) = 2 on [0, 0.25] "
        "(lululxvi/deepxde, examples/pinn_forward/ode_2nd.py)",
        _deepxde_2nd,
        exact=lambda t: 50 / 81 + 5 * t / 9 - 2 * jnp.exp(t) + 31 / 81 * jnp.exp(9 * t),
    ),
    SuiteProblem(
        "damped",
        "second order, oscillatory",
        "Moseley's PINN workshop: y'' + 2d y' + w0² y = 0, d = 2, w0 = 20, "
        "y(0) = 1, y'(0) = 0 on [0, 1] (benmoseley/harmonic-oscillator-pinn-"
        "workshop, PINN_intro_workshop.ipynb)",
        _damped,
        exact=_damped_exact(MOSELEY_D, MOSELEY_W0),
    ),
    SuiteProblem(
        "pendulum",
        "second order (nonlinear)",
        "pendulum y'' = -sin y, y(0) = 1, y'(0) = 0 on [0, 10] (textbook; "
        "odefit examples/pendulum.py)",
        _pendulum,
    ),
    SuiteProblem(
        "poisson_sin",
        "BVP",
        "DeepXDE: -y'' = pi² sin(pi t), y(-1) = y(1) = 0, y = sin(pi t) "
        "(lululxvi/deepxde, examples/pinn_forward/Poisson_Dirichlet_1d.py)",
        _poisson_sin,
        exact=lambda t: jnp.sin(jnp.pi * t),
    ),
    SuiteProblem(
        "oscillator_bvp",
        "BVP, oscillatory",
        "NeuroDiffEq test: y'' = -y, y(0) = 0, y(1.5 pi) = -1, y = sin t "
        "(NeuroDiffGym/neurodiffeq, tests/test_ode.py::test_ode_bvp)",
        _oscillator_bvp,
        exact=jnp.sin,
    ),
    SuiteProblem(
        "bratu",
        "BVP (nonlinear)",
        "Bratu's problem y'' + e^y = 0, y(0) = y(1) = 0 (lambda = 1, lower branch; "
        "Boyd 1986, Appl. Math. Comput. 19)",
        _bratu,
        exact=_bratu_exact,
    ),
    SuiteProblem(
        "boundary_layer",
        "BVP (boundary layer)",
        "convection-diffusion eps y'' + y' = 0, y(0) = 0, y(1) = 1, eps = 0.05 "
        "(textbook singular perturbation; layer of width eps at t = 0)",
        _boundary_layer,
        exact=_boundary_layer_exact,
    ),
    SuiteProblem(
        "harmonic_long",
        "long horizon, second order",
        "y'' = -y, y(0) = 0, y'(0) = 1 on [0, 16 pi]: 8 periods (the NeuroDiffEq "
        "test problem on a long horizon)",
        _harmonic(16 * math.pi),
        exact=jnp.sin,
    ),
    SuiteProblem(
        "lotka_volterra_long",
        "long horizon, system",
        "Lotka-Volterra, all rates 1, (1.5, 1) on [0, 36]: about 5 cycles "
        "(NeuroDiffEq's test problem, three times longer)",
        _lotka_volterra(36.0),
    ),
    SuiteProblem(
        "inverse_decay",
        "inverse (1 parameter)",
        "decay rate k of y' = -k y on [0, 4], true 0.7, start 0.3, 20 noise-free "
        "observations (textbook; NeuroDiffEq/DeepXDE-style parameter inference)",
        _inverse_decay(_unknowns([0.3])),
        exact=lambda t: jnp.exp(-DECAY_RATE * t),
        truth=_inverse_decay((DECAY_RATE,)),
        true_args=(DECAY_RATE,),
        n_observations=20,
    ),
    SuiteProblem(
        "inverse_damped",
        "inverse (2 parameters), second order",
        "damping c and stiffness k of y'' = -c y' - k y on [0, 5], true (0.4, 4), "
        "start (0.2, 3), 30 noise-free observations (Moseley's workshop identifies "
        "the damping: benmoseley/harmonic-oscillator-pinn-workshop, "
        "PINN_intro_workshop.ipynb)",
        _inverse_damped(_unknowns([0.2, 3.0])),
        exact=_damped_exact(DAMPING / 2, math.sqrt(STIFFNESS)),
        truth=_inverse_damped((DAMPING, STIFFNESS)),
        true_args=(DAMPING, STIFFNESS),
        n_observations=30,
    ),
    SuiteProblem(
        "inverse_lotka_volterra",
        "inverse (4 parameters), system",
        "Lotka-Volterra rates (1.5, 1, 3, 1) on [0, 5], start 30% off, 40 "
        "noise-free observations (jinns: mia-jinns/jinns, Notebooks/ODE/"
        "1D_Generalized_Lotka_Volterra_JointEstimation_Vanilla.ipynb; odefit "
        "examples/inverse_lotka_volterra.py)",
        _inverse_lv(
            _unknowns(
                [v * f for v, f in zip(LV_TRUE, (1.3, 0.7, 0.7, 1.3), strict=True)]
            )
        ),
        truth=_inverse_lv(LV_TRUE),
        true_args=LV_TRUE,
        n_observations=40,
    ),
]

BY_NAME = {p.name: p for p in PROBLEMS}
