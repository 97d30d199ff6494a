"""The delivery: scripts/bundle's archive installs with no network and runs the seed's example."""

from __future__ import annotations

import subprocess
import tarfile
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.conftest import REPO, Server, clean_env, wait_for

#: Any attempt to reach an index fails at once: the site has no network.
OFFLINE = {
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "PIP_NO_INDEX": "1",
}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    made = subprocess.run(
        [str(REPO / "scripts" / "bundle"), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert made.returncode == 0, made.stderr[-3000:]
    return Path(made.stdout.strip().splitlines()[-1])


@pytest.fixture
def site(bundle: Path, tmp_path: Path) -> Iterator[Server]:
    """The bundle unpacked and installed on a "site": spad runs in the foreground."""
    with tarfile.open(bundle) as archive:
        archive.extractall(tmp_path / "site", filter="data")
    (unpacked,) = (tmp_path / "site").iterdir()
    server = Server(tmp_path / "home")
    server.stderr_path = tmp_path / "install.log"
    with server.stderr_path.open("wb") as log:
        server.process = subprocess.Popen(
            [
                str(unpacked / "install"),
                "--prefix",
                str(tmp_path / "opt" / "spad"),
                "--home",
                str(server.home),
                "--listen",
                "127.0.0.1:0",
                "--foreground",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=clean_env(**OFFLINE),
        )
    try:
        server.url = wait_for(server._announced_url, timeout=300, what="the installed spad")
        yield server
    finally:
        server.kill_everything()


def test_the_bundle_is_named_by_version_and_holds_every_wheel(bundle: Path) -> None:
    assert bundle.name.startswith(f"spad-{version('spad')}-py3")
    with tarfile.open(bundle) as archive:
        names = {Path(name).name for name in archive.getnames()}
    assert {"install", "spad.service", "definition.json"} <= names
    wheels = {name.split("-")[0].lower() for name in names if name.endswith(".whl")}
    assert {"spad", "h11", "msgspec", "click", "rich", "psycopg", "psycopg_binary"} <= wheels


def test_the_bundle_installs_offline_and_runs_the_example(site: Server, tmp_path: Path) -> None:
    bin_dir = tmp_path / "opt" / "spad" / "bin"
    env = clean_env(SPA_URL=site.url, SPA_HOME=str(site.home))

    def spa_ctl(*args: str) -> str:
        done = subprocess.run(
            [str(bin_dir / "spa_ctl"), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    (example,) = (tmp_path / "site").glob("*/examples/definition.json")
    spa_ctl("create", "-f", str(example))
    spa_ctl("run", "-w", "wf1")
    assert site.wait_status("wf1", "success0")["tasks"][1]["status"] == "success0"
    assert "simple: pr1/wf1/t12 sleeps 5s" in spa_ctl("logs", "-w", "wf1", "-t", "t12")
    # The installed package carries its compiled spawner: the fast path with no compiler.
    check = "from spad.executors.local import find_spawner, LIBRARY; print(find_spawner(), LIBRARY)"
    found = subprocess.run(
        [str(bin_dir / "python"), "-c", check], capture_output=True, text=True, check=True
    ).stdout
    assert not found.startswith("None") and str(tmp_path / "opt" / "spad") in found
    shown = subprocess.run(
        [str(bin_dir / "spad"), "--version"], capture_output=True, text=True, check=True
    )
    assert shown.stdout.strip() == f"spad {version('spad')}"
