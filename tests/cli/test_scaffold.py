"""``workhive new module``: the files it writes, and that their tests pass as generated.

The generated tests run here in a subprocess with pytest plugins that a user's project may not
have switched off (``-p no:asyncio``): they must not need them. The same tests also run
against the installed wheel alone in ``tests/docs/test_installed_wheel.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from workhive.cli.scaffold import new_group


def _generate(tmp_path: Path, *options: str) -> list[str]:
    out = CliRunner().invoke(new_group, ["module", "blog_posts", "--dir", str(tmp_path),
                                         *options])
    assert out.exit_code == 0, out.output
    return sorted(p.name for p in (tmp_path / "blog_posts").iterdir())


def _pytest(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:asyncio",
         "-W", "error", "--rootdir", str(tmp_path), str(tmp_path / "blog_posts")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_refuses_bad_names_and_existing_dirs(tmp_path: Path) -> None:
    runner = CliRunner()
    for bad in ("Bad-Name", "class", "1st", ""):
        out = runner.invoke(new_group, ["module", bad, "--dir", str(tmp_path)])
        assert out.exit_code == 2 and "not a valid module name" in out.output, bad
    (tmp_path / "taken").mkdir()
    out = runner.invoke(new_group, ["module", "taken", "--dir", str(tmp_path)])
    assert out.exit_code == 1 and "already exists" in out.output


@pytest.mark.integration
def test_module_without_a_command_worker_passes_its_test(tmp_path: Path) -> None:
    assert _generate(tmp_path) == ["__init__.py", "tasks.py", "test_blog_posts.py"]
    init = (tmp_path / "blog_posts" / "__init__.py").read_text()
    assert "commandlog" not in init and "worker" not in init
    result = _pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


@pytest.mark.integration
def test_with_command_worker_adds_the_worker_and_its_tests(tmp_path: Path) -> None:
    assert _generate(tmp_path, "--with-command-worker") == [
        "__init__.py", "commands.py", "tasks.py", "test_blog_posts.py",
        "test_blog_posts_worker.py", "worker.py"]
    result = _pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
