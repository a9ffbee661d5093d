"""Every lesson's commands run (quick versions), and every lesson has its parts and its plot."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.cli import main

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "docs" / "lessons").glob("0*.md"))


def commands(lesson: Path) -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", lesson.read_text(), flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_there_are_four_lessons_with_their_parts():
    assert len(LESSONS) >= 4
    for lesson in LESSONS:
        text = lesson.read_text()
        for heading in ("## The idea", "## Run it", "## What the testbed shows", "## Questions"):
            assert heading in text, f"{lesson.name}: no {heading!r}"
        images = re.findall(r"!\[[^]]*\]\((img/[^)]+)\)", text)
        assert images and all((lesson.parent / image).is_file() for image in images), lesson.name
        assert commands(lesson), lesson.name


# The lessons' runs, shortened for the test (the mechanism is the same; the world runs a half or a quarter hour)
SHORTER = {"compare": ["--set", "run.duration_hours=0.5"], "run": ["--set", "run.duration_hours=0.5"],
           "benchmarks.experiments.models": ["--hours", "0.25"]}


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_lesson_commands_run(lesson, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    for line in commands(lesson):
        words = shlex.split(line.replace("runs/", f"{tmp_path}/"))
        words += next((extra for command, extra in SHORTER.items() if command in words[1:3]), [])
        if words[0] == "adfloor":  # the CLI's own entry point, in this process (no fresh import and tracing)
            assert main(words[1:]) == 0, f"{line}\n{capsys.readouterr().err[-2000:]}"
            continue
        assert words[0] == "python", line
        scratch = tmp_path / "scratch"  # its temporary files, which it must remove
        scratch.mkdir(exist_ok=True)
        result = subprocess.run([sys.executable, *words[1:]], capture_output=True, text=True, timeout=600,
                                env={**os.environ, "TMPDIR": str(scratch)})
        assert result.returncode == 0, f"{line}\n{result.stderr[-2000:]}"
        assert not list(scratch.iterdir()), f"{line} left {[p.name for p in scratch.iterdir()]}"
