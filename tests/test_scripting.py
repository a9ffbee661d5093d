"""The scripting guide's example runs as documented."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_quickstart_example_runs(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "docs" / "examples" / "quickstart.py"), "--hours", "0.3"],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "PV log loss" in result.stdout and "ad_set_churn" in result.stdout


def test_readme_opens_with_an_example_that_runs(monkeypatch, capsys):
    """The README's first Python block runs as written (from the project root) and prints its numbers."""
    text = (ROOT / "README.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(ROOT)
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out.split()
    assert 0.0 < float(printed[0]) < 1.0 and "revenue" in " ".join(printed)
