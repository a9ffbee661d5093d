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
