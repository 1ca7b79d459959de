"""Networks for the ansatz beyond the plain MLP: `PINN(problem, network=...)`."""

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
from jax.typing import DTypeLike
from jaxtyping import Array, ArrayLike, Float, PyTree

from .._custom_types import Key
from .pinn import _check_positive_int


def _float_dtype(dtype) -> jnp.dtype:
    """`dtype`, or JAX's default floating dtype (float64 when x64 is enabled)."""
    if dtype is None:
        return jnp.dtype(jax.dtypes.canonicalize_dtype(jnp.float64))
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"`dtype` must be a floating dtype, got {dtype}.")
    return dtype


def _check_mlp(in_size, out_size, width, depth, dtype, activation):
    """The checked sizes and dtype shared by odefit's networks."""
    if not callable(activation):
        raise TypeError(
            f"`activation` must be callable, got {type(activation).__name__}."
        )
    return (
        _check_positive_int(in_size, "in_size"),
        _check_positive_int(out_size, "out_size"),
        _check_positive_int(width, "width"),
        _check_positive_int(depth, "depth"),
        _float_dtype(dtype),
    )


class FourierMLP(eqx.Module):
    r"""An MLP on random Fourier features of its input.

    The input $x$ (for a [`odefit.PINN`][], the scaled time $\tau \in [-1, 1]$) is
    first embedded as

    $$\gamma(x) = \bigl[\sin(2\pi B x),\ \cos(2\pi B x)\bigr] \in \mathbb{R}^{2m},$$

    with a fixed frequency matrix $B \in \mathbb{R}^{m \times d}$, and $\gamma(x)$
    is passed through an `eqx.nn.MLP`. A plain tanh MLP learns low frequencies
    first and high ones very slowly (spectral bias); the embedding hands it the
    oscillations directly, which helps with oscillatory or multi-scale solutions.
    A frequency $b$ makes $2b$ periods over $\tau \in [-1, 1]$, i.e. over
    $[t_0, t_1]$.

    $B$ is never trained: `trainable()` leaves it out (a `PINN` uses that method
    to choose what `fit` trains), and the forward pass stops gradients through it,
    so a hand-written optax loop leaves it unchanged too.

    **Arguments:**

    - `in_size`: the input dimension $d$; 1 for a `PINN`.
    - `out_size`: the output size; `problem.state.size` for a `PINN`.
    - `width`, `depth`: hidden width and number of hidden layers of the MLP.
    - `frequencies`: either the number $m$ of frequencies, drawn as
        $B_{ij} \sim \mathcal{N}(0, \sigma^2)$ (Tancik et al.), or $B$ itself: an
        array of shape `(m, in_size)` (or `(m,)` when `in_size=1`), e.g. the
        deterministic geometric ladder `jnp.geomspace(0.25, 8.0, 6)`.
    - `sigma`: the standard deviation $\sigma$ of the random frequencies; default
        1. The larger, the higher the frequencies the network starts with. Only
        with a number of `frequencies`.
    - `activation`: the hidden activation of the MLP; default `jnp.tanh`.
    - `key`: a `jax.random` key for $B$ and the MLP's initial weights.
    - `dtype`: the floating dtype of all arrays; default JAX's default (float64
        when x64 is enabled). For a `PINN`, the state's dtype.

    **Example:**

    ```python
    import jax
    import jax.numpy as jnp
    import odefit

    problem = odefit.IVP(lambda t, y, args: jnp.cos(20.0 * t), t0=0.0, t1=1.0,
                         y0=0.0)
    network = odefit.FourierMLP(out_size=1, width=32, depth=2, frequencies=8,
                                sigma=2.0, key=jax.random.key(0))
    model = odefit.PINN(problem, network=network)
    model(0.0)   # exactly y0
    ```

    **References:**

    Tancik et al., *Fourier Features Let Networks Learn High Frequency Functions
    in Low Dimensional Domains*, NeurIPS 2020,
    [arXiv:2006.10739](https://arxiv.org/abs/2006.10739); Wang, Wang & Perdikaris,
    *On the eigenvector bias of Fourier feature networks: From regression to
    solving multi-scale PDEs with physics-informed neural networks*, 2021,
    [arXiv:2012.10047](https://arxiv.org/abs/2012.10047).
    """

    frequencies: Float[Array, "frequencies in_size"]
    mlp: eqx.nn.MLP
    in_size: int = eqx.field(static=True)
    out_size: int = eqx.field(static=True)

    def __init__(
        self,
        *,
        in_size: int = 1,
        out_size: int,
        width: int = 64,
        depth: int = 3,
        frequencies: int | Float[ArrayLike, "frequencies *in_size"] = 16,
        sigma: float | None = None,
        activation: Callable[[Array], Array] = jnp.tanh,
        key: Key,
        dtype: DTypeLike | None = None,
    ):
        in_size, out_size, width, depth, dtype = _check_mlp(
            in_size, out_size, width, depth, dtype, activation
        )
        b_key, mlp_key = jr.split(key)
        if isinstance(frequencies, int) and not isinstance(frequencies, bool):
            m = _check_positive_int(frequencies, "frequencies")
            sigma = 1.0 if sigma is None else sigma
            if not (isinstance(sigma, (int, float)) and math.isfinite(sigma)) or (
                sigma <= 0
            ):
                raise ValueError(f"`sigma` must be a finite number > 0, got {sigma!r}.")
            b = sigma * jr.normal(b_key, (m, in_size), dtype)
        else:
            if sigma is not None:
                raise TypeError(
                    "`sigma` only applies to randomly drawn frequencies (an integer "
                    f"`frequencies`); got sigma={sigma!r} together with an array of "
                    "frequencies."
                )
            b = jnp.asarray(frequencies, dtype)
            if b.ndim == 1 and in_size == 1:
                b = b[:, None]
            if b.ndim != 2 or b.shape[0] < 1 or b.shape[1] != in_size:
                raise ValueError(
                    "`frequencies` must be a number of frequencies or an array of "
                    f"shape (m, in_size) = (m, {in_size}), got shape "
                    f"{jnp.shape(frequencies)}."
                )
            if not bool(jnp.all(jnp.isfinite(b))):
                raise ValueError(f"`frequencies` must be finite, got {b}.")
        self.frequencies = b
        self.mlp = eqx.nn.MLP(
            in_size=2 * b.shape[0],
            out_size=out_size,
            width_size=width,
            depth=depth,
            activation=activation,
            dtype=dtype,
            key=mlp_key,
        )
        self.in_size, self.out_size = in_size, out_size

    def __call__(self, x: Float[Array, " in_size"]) -> Float[Array, " out_size"]:
        """The network at one input `x` of shape `(in_size,)`."""
        angle = 2 * jnp.pi * (jax.lax.stop_gradient(self.frequencies) @ x)
        return self.mlp(jnp.concatenate([jnp.sin(angle), jnp.cos(angle)]))

    def trainable(self) -> PyTree[bool]:
        """The filter spec of the trained leaves: the MLP's weights and biases, not
        the frequencies."""
        spec = jtu.tree_map(eqx.is_inexact_array, self)
        return eqx.tree_at(lambda n: n.frequencies, spec, False)


class ResidualMLP(eqx.Module):
    r"""An MLP whose hidden layers are residual blocks.

    $$h_1 = \sigma(W_0 x + b_0), \qquad h_{k+1} = h_k + \sigma(W_k h_k + b_k), \qquad
    y = W_{\text{depth}}\, h_{\text{depth}} + b_{\text{depth}}.$$

    The skip connections keep deeper networks trainable (the signal and its
    gradient pass through the identity), so depth can grow where a plain MLP of
    the same size stalls. It has exactly the weights of
    `eqx.nn.MLP(in_size, out_size, width, depth)`, stored the same way (`layers`),
    so the two compare like for like.

    **Arguments:**

    - `in_size`: the input dimension; 1 for a [`odefit.PINN`][].
    - `out_size`: the output size; `problem.state.size` for a `PINN`.
    - `width`, `depth`: hidden width and number of hidden layers (`depth - 1`
        residual blocks after the input layer).
    - `activation`: the hidden activation; default `jnp.tanh`.
    - `key`: a `jax.random` key for the initial weights.
    - `dtype`: the floating dtype of the weights; default JAX's default (float64
        when x64 is enabled). For a `PINN`, the state's dtype.

    **Example:**

    ```python
    import jax
    import odefit

    problem = odefit.IVP(lambda t, y, args: -y, t0=0.0, t1=1.0, y0=1.0)
    network = odefit.ResidualMLP(out_size=1, width=16, depth=4,
                                 key=jax.random.key(0))
    model = odefit.PINN(problem, network=network)
    model(0.5).shape   # ()
    ```

    **References:**

    He, Zhang, Ren & Sun, *Deep Residual Learning for Image Recognition*, CVPR
    2016, [arXiv:1512.03385](https://arxiv.org/abs/1512.03385).
    """

    layers: tuple[eqx.nn.Linear, ...]
    activation: Callable[[Array], Array]
    in_size: int = eqx.field(static=True)
    out_size: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)

    def __init__(
        self,
        *,
        in_size: int = 1,
        out_size: int,
        width: int = 64,
        depth: int = 3,
        activation: Callable[[Array], Array] = jnp.tanh,
        key: Key,
        dtype: DTypeLike | None = None,
    ):
        in_size, out_size, width, depth, dtype = _check_mlp(
            in_size, out_size, width, depth, dtype, activation
        )
        sizes = [in_size] + [width] * depth + [out_size]
        keys = jr.split(key, depth + 1)
        self.layers = tuple(
            eqx.nn.Linear(i, o, dtype=dtype, key=k)
            for i, o, k in zip(sizes[:-1], sizes[1:], keys, strict=True)
        )
        self.activation = activation
        self.in_size, self.out_size = in_size, out_size
        self.width, self.depth = width, depth

    def __call__(self, x: Float[Array, " in_size"]) -> Float[Array, " out_size"]:
        """The network at one input `x` of shape `(in_size,)`."""
        h = self.activation(self.layers[0](x))
        for layer in self.layers[1:-1]:
            h = h + self.activation(layer(h))
        return self.layers[-1](h)
