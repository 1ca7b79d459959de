"""Create one virtual environment per peer library, with pinned versions.

Each peer lives in `benchmarks/peers/.venvs/<peer>` (git-ignored), so its
dependencies never touch odefit's environment. PyTorch-based peers get
`torch==2.13.0` (CPU build) installed first; the install then checks that pip
did not replace it.

    python benchmarks/peers/envs.py [--only jinns deepxde neurodiffeq]
"""

import argparse
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
VENVS = HERE / ".venvs"
TORCH = "torch==2.13.0"

# peer -> (packages installed first, peer packages)
PINS = {
    "jinns": ((), ("jinns==1.10.2", "matplotlib")),
    "deepxde": ((TORCH,), ("deepxde==1.15.0",)),
    "neurodiffeq": ((TORCH,), ("neurodiffeq==0.7.0",)),
}
PEERS = tuple(PINS)


def python(peer: str) -> pathlib.Path:
    return VENVS / peer / "bin" / "python"


def _pip(peer: str, *args: str) -> None:
    subprocess.run([str(python(peer)), "-m", "pip", "install", "-q", *args], check=True)


def _torch_version(peer: str) -> str:
    out = subprocess.run(
        [str(python(peer)), "-c", "import torch; print(torch.__version__)"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def ensure(peer: str) -> pathlib.Path:
    """Create the venv of `peer` unless it exists and imports its library."""
    if peer not in PINS:
        raise ValueError(f"`peer` must be one of {PEERS}, got {peer!r}.")
    py = python(peer)
    marker = VENVS / peer / ".installed"
    if py.exists() and marker.exists():
        return py
    VENVS.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENVS / peer)], check=True)
    first, rest = PINS[peer]
    if first:
        _pip(peer, *first)
    _pip(peer, *rest, *first)
    if first:
        version = _torch_version(peer)
        if not version.startswith("2.13.0"):
            raise RuntimeError(f"pip replaced torch 2.13.0 by {version} in {peer}.")
    marker.write_text(" ".join(first + rest) + "\n")
    return py


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", default=list(PEERS))
    args = parser.parse_args()
    for peer in args.only:
        print(peer, ensure(peer), flush=True)


if __name__ == "__main__":
    main()
