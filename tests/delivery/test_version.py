"""The version comes from the package's metadata, one value everywhere."""

from __future__ import annotations

import subprocess
from importlib.metadata import version

import spad
from tests.conftest import VENV_BIN, clean_env, run_spad


def test_spad_and_spa_ctl_print_the_package_version() -> None:
    assert spad.__version__ == version("spad")
    assert run_spad("--version").stdout == f"spad {spad.__version__}\n"
    shown = subprocess.run(
        [str(VENV_BIN / "spa_ctl"), "--version"],
        capture_output=True,
        text=True,
        env=clean_env(),
        check=True,
    )
    assert shown.stdout == f"spa_ctl (spad) {spad.__version__}\n"


def test_the_runner_does_not_pay_for_the_version() -> None:
    # importlib.metadata is loaded on first use of spad.__version__, not with the package.
    probe = "import spad, sys; print('importlib.metadata' in sys.modules)"
    loaded = subprocess.run(
        [str(VENV_BIN / "python"), "-c", probe], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "False"
