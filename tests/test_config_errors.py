"""A malformed scenario exits with status 2 and one stderr line naming the field: never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

import simulator
from simulator import config
from simulator.cli import main
from tests.conftest import ROOT, SMOKE

BAD_INPUTS = {
    "unknown key": (["--set", "train.batch_sise=4"], "train.batch_sise"),
    "unknown section": (["--set", "trainer.batch_size=4"], "trainer"),
    "wrong type": (["--set", "train.batch_size=\"big\""], "train.batch_size"),
    "float for int": (["--set", "world.num_positions=2.5"], "world.num_positions"),
    "out of range": (["--set", "traffic.diurnal_amplitude=1.5"], "traffic.diurnal_amplitude"),
    "bad choice": (["--set", "model.transfer=tanh"], "model.transfer"),
    "bad treatment": (["--set", "world.treatments=[\"text\", \"video\"]"], "world.treatments"),
    "empty list": (["--set", "world.treatments=[]"], "world.treatments"),
    "list length": (["--set", "world.position_effects=[1.0, 0.5]"], "world.position_effects"),
    "bad override syntax": (["--set", "train.batch_size"], "train.batch_size"),
    "bad slice family": (["--set", "train.bias_constraints=[\"position\", \"device\"]"], "train.bias_constraints"),
    "repeated slice family": (["--set", "train.bias_constraints=[\"position\", \"position\"]"], "train.bias_constraints"),
    "model cross-field rule": (["--set", "model.gsmelu_g_plus=-1"], "model.gsmelu_g_plus"),
    "bad width": (["--set", "model.quality_hidden=[16, 0]"], "model.quality_hidden"),
    "train cross-field rule": (["--set", "train.num_devices=3"], "train.num_devices"),
    "bad reserve kind": (["--set", "auction.reserve_kind=random"], "auction.reserve_kind"),
    "realistic key in the teaching world": (["--set", "world.num_queries=5"], "world.num_queries"),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_override_exits_2_with_one_line_naming_the_field(name, capsys, tmp_path):
    extra, field = BAD_INPUTS[name]
    status = main(["run", str(SMOKE), "--out", str(tmp_path / "out"), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1 and field in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "out").exists()


def test_missing_file_and_bad_toml_exit_2(capsys, tmp_path):
    assert main(["run", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml" in capsys.readouterr().err
    broken = tmp_path / "broken.toml"
    broken.write_text("[run\nseed = 1\n")
    assert main(["run", str(broken)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad TOML" in err[0]


def test_unknown_key_in_file_names_section_and_key(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text("[world]\nnum_topix = 3\n")
    with pytest.raises(config.ConfigError, match=r"world\.num_topix: unknown key; allowed: .*num_topics"):
        simulator.load(path)


def test_error_from_a_real_process_has_no_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "simulator.cli", "run", "scenarios/smoke.toml", "--set", "run.seed=-1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "run.seed" in result.stderr and "Traceback" not in result.stderr


def test_resolved_config_round_trips(tmp_path):
    scenario = simulator.load(SMOKE, overrides=["train.batch_size=128", "model.transfer=exp"], seed=5)
    path = tmp_path / "config.toml"
    path.write_text(config.dumps(scenario))
    assert simulator.load(path) == scenario


def test_configuration_reference_is_current():
    assert (ROOT / "docs" / "configuration.md").read_text() == config.reference_markdown()
