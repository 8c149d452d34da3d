"""The sdist and the wheel: the sdist carries what its tests read, and the wheel installed in a fresh
virtual environment runs every command.

Building and installing takes a minute or more (pip fetches the build backend and the wheel's dependencies),
so the round trip runs only with DERIVCHECK_PACKAGING=1; the file lists below are checked every time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
ROUND_TRIP = pytest.mark.skipif(os.environ.get("DERIVCHECK_PACKAGING") != "1",
                                reason="builds and installs packages (about a minute): set DERIVCHECK_PACKAGING=1")


def test_the_license_is_mit_and_declared():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "derivcheck contributors" in text
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'license = "MIT"' in pyproject and 'license-files = ["LICENSE"]' in pyproject


def test_the_sdist_manifest_carries_what_the_tests_read():
    manifest = (ROOT / "MANIFEST.in").read_text().split()
    for folder in ("tests", "derivations", "docs"):
        assert folder in manifest, folder
    assert {"LICENSE", "README.md"} <= set(manifest)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    run = subprocess.run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(ROOT)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return {"sdist": next(out.glob("*.tar.gz")), "wheel": next(out.glob("*.whl"))}


@ROUND_TRIP
def test_the_sdists_tests_collect_and_run_from_the_unpacked_archive(built, tmp_path):
    with tarfile.open(built["sdist"]) as tar:
        tar.extractall(tmp_path, filter="data")
    root = next(tmp_path.iterdir())
    assert (root / "LICENSE").is_file() and (root / "docs" / "derivations.md").is_file()
    env = {**os.environ, "PYTHONPATH": str(root)}  # the archive's own derivcheck, not this checkout's
    collect = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
                             cwd=root, capture_output=True, text=True, env=env)
    assert collect.returncode == 0 and "error" not in collect.stdout.lower(), collect.stdout[-3000:]
    fast = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_structures.py",
                           "tests/test_pytest_plugin.py", "-x"], cwd=root, capture_output=True, text=True, env=env)
    assert fast.returncode == 0, fast.stdout[-3000:]
    assert str(root) in subprocess.run([sys.executable, "-c", "import derivcheck; print(derivcheck.__file__)"],
                                       cwd=root, capture_output=True, text=True, env=env).stdout


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel installed (and its dependencies, from the index)."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=True)
    install = subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", str(built["wheel"])],
                             capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-3000:]
    return env_dir


def _failures(env_dir: Path, commands: list[list[str]], cwd: Path) -> dict[str, str]:
    failed = {}
    for args in commands:
        run = subprocess.run([str(env_dir / "bin" / "derivcheck"), *args], capture_output=True, text=True, cwd=cwd)
        if run.returncode != 0:
            failed[" ".join(args)] = run.stderr[-500:]
    return failed


@ROUND_TRIP
def test_the_wheel_in_a_fresh_venv_runs_every_command(built, installed, tmp_path):
    names = zipfile.ZipFile(built["wheel"]).namelist()
    assert "derivcheck/py.typed" in names and any(n.endswith("licenses/LICENSE") for n in names)
    env_dir, python = installed, installed / "bin" / "python"
    user = tmp_path / "mine.py"
    user.write_text("import numpy as np\ndef loss(w):\n    return float(np.sum(w ** 3))\ndef grad(w):\n    return 3 * w ** 2\n")
    commands = [
        ["--version"], ["list"], ["derive", "dense"], ["verify", "dense", "--jobs", "1"], ["demo", "mlp-one-entry"],
        ["check", f"{user}:loss", f"{user}:grad", "--shape", "w=3x2"],
        ["derive-expr", "sum(X @ w)", "--wrt", "w", "--let", "X: N x D", "--let", "w: D"],
        ["check-eq", "sum(X @ w)", "X.T @ ones(N)", "--wrt", "w", "--let", "X: N x D", "--let", "w: D"],
    ]
    assert not _failures(env_dir, commands, tmp_path)
    plugin = subprocess.run([str(python), "-c", "from importlib.metadata import entry_points; "
                             "print([e.value for e in entry_points(group='pytest11')])"], capture_output=True, text=True)
    assert "derivcheck.interfaces.pytest_plugin" in plugin.stdout


@ROUND_TRIP
def test_the_wheel_runs_the_derivation_scripts(built, installed, tmp_path):
    assert "derivcheck_derivations/bias_gradient.py" in zipfile.ZipFile(built["wheel"]).namelist()
    # From a folder with no derivations/ beside it: the scripts come from the installed package.
    assert not _failures(installed, [["derivations"], ["derivations", "bias_gradient"],
                                     ["derivations", "conv_parameters", "--channels", "1"]], tmp_path)


def test_the_wheel_packages_every_folder_of_derivcheck_and_the_derivation_scripts():
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "derivcheck").rglob("__init__.py")}
    assert listed == folders | {"derivcheck_derivations"}
    assert (ROOT / "derivations" / "__init__.py").is_file()  # the scripts are a package once installed


def test_the_derivation_scripts_are_found_installed_or_in_the_source_tree(tmp_path, monkeypatch):
    from derivcheck.interfaces.derivation_scripts import scripts, scripts_dir

    assert scripts_dir("no_such_package_here") == ROOT / "derivations"  # the source tree, when none is installed
    installed = tmp_path / "derivcheck_derivations_fake"
    installed.mkdir()
    (installed / "__init__.py").write_text("")
    (installed / "only_one.py").write_text('"""Is this the installed copy?"""\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    assert scripts_dir("derivcheck_derivations_fake") == installed
    monkeypatch.setattr("derivcheck.interfaces.derivation_scripts.INSTALLED_PACKAGE", "derivcheck_derivations_fake")
    monkeypatch.setattr("derivcheck.interfaces.derivation_scripts.scripts_dir.__defaults__", ("derivcheck_derivations_fake",))
    assert scripts() == {"only_one": "Is this the installed copy?"}
