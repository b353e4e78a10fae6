"""mypy checks producers through typed task handles: the payload type comes from the handler.

Runs mypy (strict) on two small files: ``handles_ok.py`` must type-check, and
``handles_wrong.py`` must fail exactly on the lines marked ``# E: <code>``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
_REPORTED = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[a-z-]+)\]$")


def _mypy(tmp_path: Path, *files: Path) -> list[tuple[str, int, str]]:
    mypy = Path(sys.executable).with_name("mypy")
    done = subprocess.run(
        [str(mypy), "--strict", "--no-error-summary", "--cache-dir", str(tmp_path / "cache"),
         *(str(f.relative_to(ROOT)) for f in files)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert not done.stderr.strip(), done.stderr
    errors = []
    for line in done.stdout.splitlines():
        found = _REPORTED.match(line)
        if found:
            errors.append((Path(found["file"]).name, int(found["line"]), found["code"]))
        else:
            assert ": note: " in line, f"unexpected mypy output: {line}"
    return errors


def _expected(path: Path) -> list[tuple[str, int, str]]:
    out = []
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        mark = re.search(r"# E: ([a-z-]+)$", text)
        if mark:
            out.append((path.name, number, mark[1]))
    return out


def test_wrong_payload_types_fail_to_type_check(tmp_path: Path) -> None:
    ok, wrong = HERE / "handles_ok.py", HERE / "handles_wrong.py"
    expected = _expected(wrong)
    assert len(expected) == 5, "the marked lines of handles_wrong.py are the test"
    assert _mypy(tmp_path, ok, wrong) == expected
