"""Initial and boundary conditions built into an ansatz exactly.

Each condition maps the network's (scaled) output `n` at time `t` to a function that
satisfies the condition for every `n`, so the optimiser only has to drive the ODE
residual to zero.
"""

import abc

import equinox as eqx
from jaxtyping import Array, Float

from ._custom_types import Scalar


class AbstractCondition(eqx.Module):
    """Builds conditions into an ansatz: `y(t) = condition(t, s, n)`, where `s` is the
    time scaled to $[0, 1]$ over $[t_0, t_1]$ and `n` the network's output."""

    @abc.abstractmethod
    def __call__(
        self, t: Scalar, s: Scalar, n: Float[Array, "*state"]
    ) -> Float[Array, "*state"]:
        """The constrained value at `t`."""


class InitialValue(AbstractCondition):
    r"""$y(t) = y_0 + s\,n(t)$, so $y(t_0) = y_0$ exactly."""

    y0: Float[Array, "*state"]

    def __call__(self, t, s, n):
        return self.y0 + s * n


class InitialValueAndSlope(AbstractCondition):
    r"""$y(t) = y_0 + y'_0 (t - t_0) + s^2 n(t)$, so $y(t_0) = y_0$ and
    $y'(t_0) = y'_0$ exactly."""

    t0: float = eqx.field(static=True)
    y0: Float[Array, "*state"]
    dy0: Float[Array, "*state"]

    def __call__(self, t, s, n):
        return self.y0 + self.dy0 * (t - self.t0) + s**2 * n


class Dirichlet(AbstractCondition):
    r"""$y(t) = (1 - s)\,y_a + s\,y_b + s(1 - s)\,n(t)$, so $y(t_0) = y_a$ and
    $y(t_1) = y_b$ exactly."""

    ya: Float[Array, "*state"]
    yb: Float[Array, "*state"]

    def __call__(self, t, s, n):
        return (1 - s) * self.ya + s * self.yb + s * (1 - s) * n
