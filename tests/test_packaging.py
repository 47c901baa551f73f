"""The installed wheel, not only the source checkout, imports and runs."""

from __future__ import annotations

import site as sitelib
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    (built,) = out.glob("corenet-*.whl")
    return built


def test_wheel_maps_plugins_and_protocols_into_the_corenet_namespace(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "corenet/protocols/redis/_parser.py" in names
    assert "corenet/plugins/hashing/plugin.py" in names
    assert "corenet/py.typed" in names
    tops = {n.split("/")[0] for n in names if not n.startswith("corenet-")}
    assert tops == {"corenet"}, "plugins/ and protocols/ must not install as top-level packages"


@pytest.mark.slow
def test_installed_wheel_imports_and_runs(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # The dependencies come from the test interpreter's own site directories,
    # whatever python3 made it, as plain path lines: .pth files there (the
    # repository's editable corenet) are not run, so corenet is the wheel's.
    (Path(site) / "_test_deps.pth").write_text(
        "".join(f"{path}\n" for path in sitelib.getsitepackages())
    )
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    config = tmp_path / "nutcracker.yml"
    config.write_text(
        "alpha:\n  listen: 127.0.0.1:22121\n  redis: true\n  servers:\n    - 127.0.0.1:6379:1\n"
    )
    code = (
        "import corenet, corenet.protocols.redis, corenet.plugins.hashing, corenet.event;"
        "from corenet.proxy.plugins import load_plugins; p = load_plugins(autoload=False);"
        "print(corenet.__file__); print(sorted(p.protocols), len(p.hash_functions))"
    )
    out = subprocess.run(
        [str(python), "-I", "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert str(env_dir) in out.stdout.splitlines()[0]
    assert "'redis'" in out.stdout
    test = subprocess.run(
        [str(python), "-I", "-m", "corenet", "-t", "-c", str(config)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert test.returncode == 0, test.stderr
    assert "syntax is ok" in test.stderr
