"""Typed, validated scenario configuration: TOML in, frozen dataclasses out, one-line errors naming the field."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from auction.config import AuctionConfig
from models.config import ConfigError as ConfigError  # beside config_field, so a world being built can raise it too
from models.config import DataConfig, ModelConfig, TrainConfig, config_field
from simulator.world.config import WORLD_CROSSES, TrafficConfig, WorldConfig


@dataclass(frozen=True)
class RunConfig:
    seed: int = config_field(0, lo=0, doc="the one seed every random stream is split from")
    duration_hours: float = config_field(24.0, lo=0.01, hi=24.0 * 365, doc="simulated time to run, in hours")
    warm_start_hours: float = config_field(0.0, lo=0.0, hi=24.0 * 365,
                                           doc="start from the world and model after this many simulated hours of the "
                                               "same scenario (pre-trained once, then cached in run.warm_start_cache); "
                                               "the run reports only its own window, duration_hours after them")
    warm_start_cache: str = config_field("runs/warm-start", doc="folder of the cached pre-trained states (one per "
                                                               "scenario, seed and warm_start_hours)")
    tick_minutes: float = config_field(1.0, lo=0.01, hi=60.0, doc="traffic is emitted as one batch per tick")
    checkpoint_every_minutes: float = config_field(60.0, lo=0.0, hi=1e7, doc="simulated minutes between checkpoints of "
                                                                             "`adfloor run` (0 = none); `--resume DIR` continues")
    probe_every: int = config_field(32, lo=0, hi=1_000_000, doc="every n-th query's pCTRs (all candidates, treatments, "
                                                                   "positions) are kept, for prediction differences (0 = off)")
    records_memory_mb: float = config_field(256.0, lo=0.0, hi=1e6,
                                            doc="MiB of each record kept for the end-of-run measures (impressions, PV "
                                                "examples, probes) held in memory; past it they move to files in the "
                                                "temporary folder ($TMPDIR), removed with the run (0 = all in memory)")

    @property
    def records_memory_bytes(self) -> int:
        """`records_memory_mb` in bytes (MiB × 2²⁰), > 0 whenever the key is (0: no limit)."""
        return math.ceil(self.records_memory_mb * 2 ** 20)

    def check(self) -> None:
        """Cross-field checks (ValueError "field: why")."""
        if 0 < self.warm_start_hours < max(0.01, self.tick_minutes / 60):
            raise ValueError(f"warm_start_hours: 0 (off) or at least one tick and 0.01, got {self.warm_start_hours:g}")


@dataclass(frozen=True)
class Scenario:
    """A whole scenario: everything a run needs, saved with its results."""

    run: RunConfig = field(default_factory=RunConfig)
    traffic: TrafficConfig = field(default_factory=TrafficConfig)
    world: WorldConfig = field(default_factory=WorldConfig)
    auction: AuctionConfig = field(default_factory=AuctionConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)


# The sections of a scenario, each owned by its package: run here; traffic and world by `simulator.world`;
# auction by `auction`; model, train and data by `models`.
SECTIONS = {
    "run": RunConfig,
    "traffic": TrafficConfig,
    "world": WorldConfig,
    "auction": AuctionConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "data": DataConfig,
}


def _default(f: dataclasses.Field) -> Any:
    """A config field's default value (a fresh list for list fields)."""
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def _check_value(key: str, f: dataclasses.Field, value: Any) -> Any:
    """Coerce and check one field's value against its metadata; raise ConfigError naming `key` on anything off."""
    default = _default(f)
    meta = f.metadata
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        value = float(value)
        if value != value:
            raise ConfigError(f"{key}: expected a number, got nan")
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
    elif isinstance(default, list):
        if not isinstance(value, list) or (default and not value and not meta.get("may_be_empty")):
            raise ConfigError(f"{key}: expected a {'non-empty ' if default else ''}list, got {value!r}")
        value = list(value)
        items = meta.get("item_choices")
        if items is not None:
            for item in value:
                if item not in items:
                    raise ConfigError(f"{key}: {item!r} is not allowed; allowed: {', '.join(map(str, items))}")
            if len(set(value)) != len(value):
                raise ConfigError(f"{key}: the names must be distinct, got {value!r}")
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{key}: {value!r} is not allowed; allowed: {', '.join(map(str, choices))}")
    lo, hi = meta.get("lo"), meta.get("hi")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"{lo if lo is not None else '-inf'} ≤ value ≤ {hi if hi is not None else 'inf'}"
        raise ConfigError(f"{key}: {value!r} is out of range; allowed: {bounds}")
    return value


def from_dict(data: dict[str, Any]) -> Scenario:
    """Build a validated Scenario from nested dicts (TOML tables); missing keys take defaults."""
    if not isinstance(data, dict):
        raise ConfigError("scenario: expected a table of sections")
    sections = {}
    for name, value in data.items():
        if name not in SECTIONS:
            raise ConfigError(f"unknown section [{name}]; allowed: {', '.join(SECTIONS)}")
        if not isinstance(value, dict):
            raise ConfigError(f"[{name}]: expected a table, got {value!r}")
    for name, cls in SECTIONS.items():
        given = data.get(name, {})
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, value in given.items():
            if key not in fields:
                raise ConfigError(f"{name}.{key}: unknown key; allowed: {', '.join(fields)}")
            kwargs[key] = _check_value(f"{name}.{key}", fields[key], value)
        sections[name] = cls(**kwargs)
        check = getattr(sections[name], "check", None)
        if check is not None:
            try:
                check()
            except ValueError as err:  # the section's own cross-field rule: "field: why"
                raise ConfigError(f"{name}.{err}") from None
    _check_omitted_crosses(sections["world"].kind, sections["model"].omit_crosses)
    return Scenario(**sections)


def _check_omitted_crosses(kind: str, names: list[str]) -> None:
    """model.omit_crosses names distinct crosses the world gives (simulator.world.config.WORLD_CROSSES)."""
    crosses = WORLD_CROSSES[kind]
    unknown = [name for name in names if name not in crosses]
    if unknown:
        raise ConfigError(f"model.omit_crosses: no cross {unknown[0]!r} in the {kind} world; its crosses: "
                          f"{', '.join(crosses)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"model.omit_crosses: the names must be distinct, got {names!r}")


def to_dict(scenario: Scenario) -> dict[str, dict[str, Any]]:
    """The fully resolved scenario as nested dicts (what config.toml holds)."""
    return dataclasses.asdict(scenario)


def parse_override(text: str) -> tuple[str, str, Any]:
    """Parse `section.key=value` (value in TOML syntax; bare words are strings)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected section.key=value")
    path, raw = text.split("=", 1)
    parts = path.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"override {text!r}: the key must be section.key, e.g. train.batch_size")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return parts[0], parts[1], value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of the raw scenario dict with `section.key=value` overrides applied."""
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for text in overrides:
        section, key, value = parse_override(text)
        if section not in SECTIONS:
            raise ConfigError(f"override {text!r}: unknown section [{section}]; allowed: {', '.join(SECTIONS)}")
        merged.setdefault(section, {})[key] = value
    return merged


def shipped(folder: str) -> Path:
    """Where the files the package ships live ("scenarios", "studies"): in an installed wheel the package data they
    became (`simulator/<folder>`, pyproject.toml's package-dir), else the source checkout's top-level folder."""
    here = Path(__file__).resolve().parent
    installed = here / folder
    return installed if installed.is_dir() else here.parent / folder


SCENARIOS = shipped("scenarios")


def scenario_file(name: str) -> Path:
    """The shipped scenario `name` ("default", "smoke", ...): the one place that knows where they live."""
    return SCENARIOS / f"{name}.toml"


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a scenario file's raw tables; a missing file or bad TOML is a ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"scenario file {str(path)!r}: no such file")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"scenario file {str(path)!r}: bad TOML: {err}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"scenario file {str(path)!r}: not UTF-8 text") from None


def find_scenario(value: str | Path, base: Path | None = None) -> Path:
    """A shipped scenario when `value` names one ("default", "smoke"), else the file `value` (relative to `base`)."""
    if not str(value).endswith(".toml") and scenario_file(str(value)).is_file():
        return scenario_file(str(value))
    return base / value if base is not None else Path(value)


def load(path: str | Path | dict | None = None, overrides: list[str] | None = None, seed: int | None = None) -> Scenario:
    """Load a scenario file, a shipped scenario by name ("default", "smoke"), a file's raw tables (a dict, as a
    worker on another machine gets them) or the defaults; apply overrides and an optional seed, validate."""
    if isinstance(path, (str, Path)):
        path = find_scenario(path)
    data = path if isinstance(path, dict) else read_toml(path) if path is not None else {}
    extra = list(overrides or [])
    if seed is not None:
        extra.append(f"run.seed={seed}")
    return from_dict(apply_overrides(data, extra))


def replace(scenario: Scenario, **changes: Any) -> Scenario:
    """A validated copy with `section__key=value` changes, e.g. replace(s, run__seed=3)."""
    data = to_dict(scenario)
    for name, value in changes.items():
        section, key = name.split("__", 1)
        data[section][key] = value
    return from_dict(data)


def dumps(scenario: Scenario) -> str:
    """The scenario as TOML text, re-loadable with `load`."""
    return tomli_w.dumps(to_dict(scenario))


def reference_markdown() -> str:
    """docs/configuration.md: every key with its default, allowed values and meaning (generated, tested)."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from the sections (`simulator/config.py`, `simulator/world/config.py`, `auction/config.py`,",
        "`models/config.py`) by",
        "`python -m simulator.config > docs/configuration.md`;",
        "a test fails when this file and the code disagree. Set keys in a scenario TOML file or with",
        "`adfloor run --set section.key=value` (values in TOML syntax: `true`, `1.5`, `\"exp\"`, `[1, 2]`).",
        "",
    ]
    for name, cls in SECTIONS.items():
        lines += [f"## [{name}]", "", "| key | default | allowed | meaning |", "|---|---|---|---|"]
        for f in dataclasses.fields(cls):
            default = _default(f)
            shown = tomli_w.dumps({"v": default})[4:].strip()
            lines.append(f"| `{name}.{f.name}` | `{shown}` | {_allowed(f, '`')} | {f.metadata.get('doc', '')} |")
        lines.append("")
    return "\n".join(lines)


def _allowed(f: dataclasses.Field, quote: str = "") -> str:
    """A field's allowed values in words: its choices, its bounds or its type."""
    meta = f.metadata
    lo, hi = meta.get("lo"), meta.get("hi")
    if meta.get("choices"):
        return " / ".join(f"{quote}{c}{quote}" for c in meta["choices"])
    if meta.get("item_choices"):
        return "list of " + " / ".join(f"{quote}{c}{quote}" for c in meta["item_choices"])
    if lo is not None or hi is not None:
        return f"{lo if lo is not None else '−∞'} … {hi if hi is not None else '∞'}"
    default = _default(f)
    return type(default).__name__


def field_help(key: str) -> str:
    """One key's meaning, allowed values and default in a line (`section.key`; the app's help texts)."""
    section, _, name = key.partition(".")
    fields = {f.name: f for f in dataclasses.fields(SECTIONS[section])} if section in SECTIONS else {}
    if name not in fields:
        raise ConfigError(f"{key}: unknown key")
    f = fields[name]
    default = _default(f)
    return f"{f.metadata.get('doc', '')} — allowed {_allowed(f)}; default without a scenario {default}"


def all_keys() -> list[str]:
    """Every `section.key` a scenario has, in section order (the app's key pickers)."""
    return [f"{name}.{f.name}" for name, section in SECTIONS.items() for f in dataclasses.fields(section)]


def override_text(key: str, value: Any) -> str:
    """`key=value` with the value in TOML syntax, as `load`'s overrides read it (true, 1.5, "exp", [1, 2])."""
    return f"{key}={tomli_w.dumps({'v': value})[4:].strip()}"


def shipped_scenarios() -> list[str]:
    """The names of the shipped scenarios (files that load as a scenario: not sweep or study files)."""
    names = []
    for path in sorted(SCENARIOS.glob("*.toml")):
        try:
            load(path)
        except ConfigError:
            continue
        names.append(path.stem)
    return names


if __name__ == "__main__":
    print(reference_markdown(), end="")
