class GradientError(ValueError, RuntimeError):
    """Raised by `torchlike.grad`/`torchlike.backward` where PyTorch's autograd
    raises `RuntimeError` (a non-scalar output without `grad_outputs`, an unused
    input, mismatched shapes).

    It is both a `ValueError` (odefit's convention for bad arguments) and a
    `RuntimeError` (what code ported from PyTorch catches), so either `except`
    clause works.

    **Example:**

    ```python
    import jax.numpy as jnp
    from odefit import torchlike

    try:
        torchlike.grad(lambda x: x**2, (jnp.ones(3),))
    except RuntimeError as e:
        print(e)   # grad can be implicitly created only for scalar outputs ...
    ```
    """
