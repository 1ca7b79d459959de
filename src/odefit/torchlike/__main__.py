"""`python -m odefit.torchlike`: odefit's `grad`/`backward` side by side with
PyTorch's `autograd.grad`/`backward()` on the same inputs and weights, in float64.

Prints one row per compared quantity: PyTorch's value, odefit's value and the
largest absolute difference. Exits with status 1 if any difference exceeds the
tolerance. Without PyTorch installed it says how to install it and prints odefit's
side alone.
"""

import platform
import sys


def main() -> int:
    import jax

    # A script, not a library import: float64 is what makes the comparison exact.
    jax.config.update("jax_enable_x64", True)

    from ._crosscheck import (
        INSTALL_HINT,
        TOLERANCE,
        format_table,
        run_cases,
        torch_available as _torch_available,
    )

    with_torch = _torch_available()
    versions = f"jax {jax.__version__}"
    if with_torch:
        import torch

        versions += f", torch {torch.__version__}"
    print(
        "odefit.torchlike vs PyTorch, float64 on CPU "
        f"({versions}, Python {platform.python_version()})"
    )
    if not with_torch:
        print(
            f"PyTorch is not installed, so only odefit's side is shown. To compare, "
            f"install it with:\n    {INSTALL_HINT}"
        )
    print()
    rows = run_cases(with_torch)
    print(format_table(rows))
    print()
    if not with_torch:
        return 0
    worst = max(r.difference for r in rows)
    failed = [r for r in rows if not r.difference <= TOLERANCE]
    if failed:
        print(
            f"{len(failed)} of {len(rows)} quantities differ by more than "
            f"{TOLERANCE:g}."
        )
        return 1
    print(
        f"All {len(rows)} quantities agree within {TOLERANCE:g} "
        f"(largest difference {worst:.1e})."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
