import os
import shutil
import subprocess
from pathlib import Path

import pytest

import safe_pit_cm as spc

ROOT = Path(__file__).resolve().parents[2]


def cli_binary() -> str:
    """The command line built by `cargo test --release` / `cargo build --release`."""
    b = os.environ.get("SAFE_PIT_CM_BIN") or str(ROOT / "target" / "release" / "safe-pit-cm")
    if not Path(b).is_file():
        pytest.skip(f"no CLI binary at {b} (cargo build --release first)")
    return b


@pytest.fixture(scope="session")
def cli():
    b = cli_binary()

    def run(*args):
        return subprocess.run([b, *map(str, args)], capture_output=True, text=True)

    return run


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    """20 diffusion simulations and their 20 mobility twins, 32x32, 21 frames."""
    d = tmp_path_factory.mktemp("data") / "sims"
    spc.generate(d, n_sims=20, nx=32, ny=32, n_steps=1000, seed=5)
    yield d
    shutil.rmtree(d, ignore_errors=True)
