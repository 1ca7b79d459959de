"""The stiff problems of `benchmarks/stiff.py` and `tests/test_stiff.py`, defined
once: Robertson's kinetics on [0, 1e5], Van der Pol over two periods for a given
mu, and HIRES on [0, 321.8122], each with the times its error is measured on.
No side effects on import (the caller chooses float64)."""

import math

import jax.numpy as jnp

import odefit


def robertson(t, y, args):
    y1, y2, y3 = y
    return jnp.stack(
        [
            -0.04 * y1 + 1e4 * y2 * y3,
            0.04 * y1 - 1e4 * y2 * y3 - 3e7 * y2**2,
            3e7 * y2**2,
        ]
    )


def van_der_pol(t, y, mu):
    return jnp.stack([y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]])


def hires(t, y, args):
    y1, y2, y3, y4, y5, y6, y7, y8 = y
    r = 280.0 * y6 * y8
    return jnp.stack(
        [
            -1.71 * y1 + 0.43 * y2 + 8.32 * y3 + 0.0007,
            1.71 * y1 - 8.75 * y2,
            -10.03 * y3 + 0.43 * y4 + 0.035 * y5,
            8.32 * y2 + 1.71 * y3 - 1.12 * y4,
            -1.745 * y5 + 0.43 * y6 + 0.43 * y7,
            -r + 0.69 * y4 + 1.71 * y5 - 0.43 * y6 + 0.69 * y7,
            r - 1.81 * y7,
            -r + 1.81 * y7,
        ]
    )


def two_periods(mu):
    # The relaxation-oscillation period, (3 - 2 ln 2) mu + 3 a mu^(-1/3) with a
    # the first zero of Ai' (Dorodnitsyn's asymptotics), twice.
    return 2 * ((3 - 2 * math.log(2)) * mu + 7.014 * mu ** (-1 / 3))


def log_times(t1, first, n=1000):
    return jnp.concatenate([jnp.zeros(1), jnp.geomspace(first, t1, n - 1)])


def robertson_problem(t1=1e5):
    return odefit.IVP(robertson, 0.0, t1, jnp.array([1.0, 0.0, 0.0]))


def van_der_pol_problem(mu):
    return odefit.IVP(van_der_pol, 0.0, two_periods(mu), jnp.array([2.0, 0.0]), mu)


def hires_problem():
    y0 = jnp.array([1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0057])
    return odefit.IVP(hires, 0.0, 321.8122, y0)


def problems():
    """Each problem with the times its error is measured on."""
    return {
        "robertson": (robertson_problem(), log_times(1e5, 1e-6)),
        "van_der_pol_100": (
            van_der_pol_problem(100.0),
            jnp.linspace(0.0, two_periods(100.0), 1000),
        ),
        "hires": (hires_problem(), log_times(321.8122, 1e-3)),
        "van_der_pol_1000": (
            van_der_pol_problem(1000.0),
            jnp.linspace(0.0, two_periods(1000.0), 1000),
        ),
    }
