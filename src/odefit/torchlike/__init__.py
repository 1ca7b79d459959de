"""PyTorch's two gradient interfaces, `torch.autograd.grad` and `.backward()`,
mirrored on top of `jax.vjp`, and cross-checked against real PyTorch.

`grad` returns gradients and changes nothing; `backward` adds them into an explicit
gradient store and returns the new one (the functional form of `.grad +=`). See
`docs/grad-vs-backward.md`, and run `python -m odefit.torchlike` for a side-by-side
comparison with PyTorch. PyTorch itself is optional and imported only by the
cross-checks.
"""

from ._backward import (
    backward as backward,
    requires_grad as requires_grad,
    zero_grad as zero_grad,
)
from ._errors import GradientError as GradientError
from ._grad import grad as grad
