"""tagkit as a user installs it: the wheel's files, the wheel installed outside the checkout, `python -m tagkit`."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHIPPED = sorted(path.name for path in (REPO / "taxonomy").glob("*.yaml"))


def run(*command: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_python_m_tagkit_is_the_tagkit_command(tmp_path: Path) -> None:
    result = run(sys.executable, "-m", "tagkit", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: tagkit [OPTIONS] COMMAND [ARGS]...")
    assert "tagkit taxonomy import | show | map | suggest" in result.stdout
    wrong = run(sys.executable, "-m", "tagkit", "no-such-command", cwd=tmp_path)
    assert wrong.returncode == 2 and "No such command 'no-such-command'" in wrong.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tagkit's wheel, built from a copy of the source (a `build/` folder in the checkout may hold stale files).
    Offline, setuptools comes from the venv (no build isolation) or from the configured package index."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE", "NOTICE"):
        shutil.copy2(REPO / name, source / name)
    for folder in ("tagkit", "taxonomy"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path_factory.mktemp("dist")
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    result = run(sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-w", dist, source, cwd=source)
    if result.returncode != 0:
        output = result.stdout + result.stderr
        offline = [line for line in output.splitlines() if "No matching distribution found for setuptools" in line
                   or "No module named pip" in line]
        if offline:
            pytest.skip(f"cannot build a wheel here: setuptools is neither in the venv nor on a reachable package "
                        f"index ({offline[0].strip()})")
        pytest.fail(f"pip wheel failed:\n{output}")
    (built,) = dist.glob("tagkit-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_has_every_module_and_the_shipped_taxonomies(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for name in SHIPPED:
            assert archive.read(f"tagkit/taxonomies/{name}") == (REPO / "taxonomy" / name).read_bytes()
    assert SHIPPED == ["en-fashion.yaml", "fa-fashion.yaml"]
    modules = {path.relative_to(REPO).as_posix() for path in (REPO / "tagkit").rglob("*.py")}
    assert modules - names == set(), "pyproject.toml's `packages` misses a package"
    assert "tagkit/__main__.py" in names
    assert {"tagkit/data/efficientnet_lite0_int8.onnx", "tagkit/data/image_models.json"} <= names
    assert "tagkit/py.typed" in names, "type checkers would take tagkit for untyped (PEP 561)"


@pytest.mark.slow
def test_the_installed_wheel_imports_a_shipped_taxonomy_by_name_outside_the_checkout(wheel: Path,
                                                                                     tmp_path: Path) -> None:
    """The wheel installed in a new venv (its dependencies read from this venv's site-packages, so no download),
    run from a folder with no `taxonomy/` in it."""
    venv = tmp_path / "venv"
    assert run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path).returncode == 0
    python = venv / "bin" / "python"
    installed = run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel,
                    cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                    cwd=tmp_path).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    user = tmp_path / "shop"
    user.mkdir()

    where = run(python, "-c", "import tagkit; print(tagkit.__file__)", cwd=user)
    assert Path(where.stdout.strip()).is_relative_to(site), "the wheel's tagkit, not the checkout's"
    listed = run(venv / "bin" / "tagkit", "taxonomy", "import", "--help", cwd=user)
    assert "Shipped with tagkit: en-fashion, fa-fashion." in listed.stdout
    imported = run(python, "-m", "tagkit", "taxonomy", "import", "fa-fashion", cwd=user)
    assert imported.returncode == 0, imported.stderr
    assert "taxonomy          fa-fashion" in imported.stdout and "attributes        291" in imported.stdout
    shown = run(python, "-m", "tagkit", "taxonomy", "show", cwd=user)
    assert shown.stdout.startswith("fa-fashion (fa): 617 categories, 291 attributes, 6,238 values")
