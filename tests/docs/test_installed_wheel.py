"""The built wheel, ``pip install``-ed into a fresh virtualenv: what a new user gets.

Nothing of the checkout is visible to the installed package (commands run from an empty
directory), so these fail if the demo app, or anything ``workhive demo`` or a module made by
``workhive new module`` imports, is left out of the wheel or its dependencies. Slow (a wheel
build and an install, about 15 s with a warm pip cache): one venv per session.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _run(*args: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("WORKHIVE_")}
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, text=True,
                            capture_output=True, timeout=timeout)
    assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the built wheel, its declared dependencies and pytest (which a
    generated module's tests need, as any project's do)."""
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, REPO, cwd=root)
    wheels = list(dist.glob("workhive-*.whl"))
    assert len(wheels) == 1, wheels
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=False)  # this venv's pip installs into it: no ensurepip wait
    _run(sys.executable, "-m", "pip", "--python", env_dir / "bin" / "python", "install", "-q",
         "--disable-pip-version-check", wheels[0], "pytest", cwd=root)
    return env_dir


def test_demo_runs_from_the_installed_wheel(installed: Path, tmp_path: Path) -> None:
    result = _run(installed / "bin" / "workhive", "demo", cwd=tmp_path, timeout=120)
    for text in ("Registered (backend: sqlite)", "2 (reports)", "CrmUnavailable",
                 "Demo finished"):
        assert text in result.stdout, text
    probe = _run(installed / "bin" / "python", "-c",
                 "import workhive.demo.app, workhive; print(workhive.__file__)", cwd=tmp_path)
    assert str(installed) in probe.stdout  # the wheel's copy, not the checkout


@pytest.mark.parametrize("options", [[], ["--with-command-worker"]], ids=["tasks", "worker"])
def test_new_module_tests_pass_with_only_workhive_and_pytest(
        installed: Path, tmp_path: Path, options: list[str]) -> None:
    _run(installed / "bin" / "workhive", "new", "module", "orders", *options, cwd=tmp_path)
    result = _run(installed / "bin" / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                  "-W", "error", "orders", cwd=tmp_path, timeout=120)
    assert re.search(r"\b3 passed" if options else r"\b1 passed", result.stdout), result.stdout
