"""Typed, validated scenario configuration: TOML in, frozen dataclasses out, one-line errors naming the field."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from auction.config import AuctionConfig
from models.config import DataConfig, ModelConfig, TrainConfig, config_field
from ui_treatments import CATALOGUE


class ConfigError(ValueError):
    """A bad scenario: the message is one line naming the field and what is allowed."""


@dataclass(frozen=True)
class RunConfig:
    seed: int = config_field(0, lo=0, doc="the one seed every random stream is split from")
    duration_hours: float = config_field(24.0, lo=0.01, hi=24.0 * 365, doc="simulated time to run")
    tick_minutes: float = config_field(1.0, lo=0.01, hi=60.0, doc="traffic is emitted as one batch per tick")
    checkpoint_every_minutes: float = config_field(60.0, lo=0.0, hi=1e7, doc="simulated minutes between checkpoints of "
                                                                             "`adfloor run` (0 = none); `--resume DIR` continues")
    probe_every: int = config_field(32, lo=0, hi=1_000_000, doc="every n-th query's pCTRs (all candidates, treatments, "
                                                                   "positions) are kept, for prediction differences (0 = off)")


@dataclass(frozen=True)
class TrafficConfig:
    queries_per_minute: float = config_field(1000.0, lo=0.0, hi=1e7, doc="mean arrival rate over a day")
    diurnal_amplitude: float = config_field(0.5, lo=0.0, hi=1.0, doc="rate = mean × (1 + a·cos(2π(h − peak)/24))")
    peak_hour: float = config_field(20.0, lo=0.0, hi=24.0, doc="hour of the day with the highest rate")


@dataclass(frozen=True)
class WorldConfig:
    num_topics: int = config_field(20, lo=1, hi=10_000, doc="query/ad topics; topic popularity is Zipf-like")
    num_intents: int = config_field(4, lo=1, hi=100, doc="query intent levels; higher intent clicks more")
    num_advertisers: int = config_field(100, lo=1, hi=1_000_000, doc="each has a topic, a quality and a value per click")
    initial_ads: int = config_field(500, lo=1, hi=1_000_000, doc="ads live at the start")
    ad_arrivals_per_hour: float = config_field(8.0, lo=0.0, hi=1e6, doc="new ads (cold start); as many leave on average")
    candidates_per_query: int = config_field(20, lo=1, hi=256, doc="ads retrieved per query")
    same_topic_share: float = config_field(0.75, lo=0.0, hi=1.0, doc="share of candidates from the query's own topic")
    num_positions: int = config_field(4, lo=1, hi=8, doc="ad positions K of the longest page; ≤ 8 (the exact auction's DP "
                                                       "has 2^K states)")
    position_effects: list = config_field([1.0, 0.65, 0.45, 0.3], doc="true examination per position, top first: one "
                                                                      "list, or one list per device (its page's positions)")
    devices: list = config_field(["desktop"], doc="each query is on one device, with its own page layout")
    device_shares: list = config_field([1.0], doc="share of queries per device (sums to 1)")
    top_slots: list = config_field([], may_be_empty=True, doc="per device: positions above the results (empty: all); the "
                                   "rest are below them, and slates fill from the top, so the bottom shows under a full top")
    treatments: list = config_field(["text", "text_extensions", "image"], item_choices=tuple(t.name for t in CATALOGUE),
                                           doc="treatment names from ui_treatments")
    relevance_base: float = config_field(-3.3, lo=-20.0, hi=5.0, doc="logit of relevance for an average ad")
    advertiser_quality_sd: float = config_field(0.6, lo=0.0, hi=5.0, doc="spread of advertiser quality (logit)")
    ad_quality_sd: float = config_field(0.6, lo=0.0, hi=5.0, doc="spread of an ad's quality around its advertiser's (logit)")
    topic_match_effect: float = config_field(1.2, lo=0.0, hi=10.0, doc="logit boost when query and ad topics match")
    intent_effect: float = config_field(0.4, lo=0.0, hi=5.0, doc="logit gain per intent level")
    bid_log_mean: float = config_field(0.0, lo=-10.0, hi=10.0, doc="bids per click are lognormal")
    bid_log_sd: float = config_field(0.5, lo=0.0, hi=5.0, doc="spread of advertiser values (bids are truthful)")

    def layouts(self) -> list[list[float]]:
        """Each device's position effects (its page's positions, top first)."""
        nested = bool(self.position_effects) and all(isinstance(x, list) for x in self.position_effects)
        return [list(x) for x in self.position_effects] if nested else [list(self.position_effects)]

    def check(self) -> None:
        """Cross-field checks (ValueError "field: why")."""
        layouts, devices = self.layouts(), len(self.devices)
        if any(not isinstance(x, str) or not x for x in self.devices) or len(set(self.devices)) != devices:
            raise ValueError(f"devices: distinct non-empty names, got {self.devices!r}")
        for key in ("device_shares", "top_slots", "position_effects"):
            count = len(getattr(self, key)) if key != "position_effects" else len(layouts)
            if count != devices and not (key == "top_slots" and count == 0):
                raise ValueError(f"{key}: one entry per device ({devices}: {', '.join(self.devices)}), got {count}")
        shares = self.device_shares
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in shares) \
                or abs(sum(shares) - 1.0) > 1e-6:
            raise ValueError(f"device_shares: positive numbers that sum to 1, got {shares!r}")
        for device, effects in zip(self.devices, layouts):
            if not effects or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x <= 1 for x in effects):
                raise ValueError(f"position_effects: {device}'s page needs numbers in (0, 1], got {effects!r}")
        longest = max(len(effects) for effects in layouts)
        if longest != self.num_positions:
            what = "the longest page's positions" if devices > 1 else "its length"
            raise ValueError(f"position_effects: needs {self.num_positions} numbers (num_positions), got {longest} ({what})")
        for device, effects, top in zip(self.devices, layouts, self.top_slots):
            if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= len(effects):
                raise ValueError(f"top_slots: {device}'s must be an integer from 1 to its {len(effects)} positions, got {top!r}")

    def page_lengths(self) -> list[int]:
        """Each device's page positions (top and bottom)."""
        return [len(effects) for effects in self.layouts()]

    def top_positions(self) -> list[int]:
        """Each device's positions above the results."""
        return list(self.top_slots) or self.page_lengths()

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


# The sections of a scenario, each owned by its package: run, traffic and world here; auction by `auction`;
# model, train and data by `models`.
SECTIONS = {
    "run": RunConfig,
    "traffic": TrafficConfig,
    "world": WorldConfig,
    "auction": AuctionConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "data": DataConfig,
}


def _check_value(key: str, f: dataclasses.Field, value: Any) -> Any:
    """Coerce and check one field's value against its metadata; raise ConfigError naming `key` on anything off."""
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
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
    return Scenario(**sections)


def to_dict(scenario: Scenario) -> dict[str, dict[str, Any]]:
    """The fully resolved scenario as nested dicts (what config.toml holds)."""
    return dataclasses.asdict(scenario)


def parse_override(text: str) -> tuple[str, str, Any]:
    """Parse `section.key=value` (value in TOML syntax; bare words are strings)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    path, raw = text.split("=", 1)
    parts = path.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"--set {text!r}: the key must be section.key, e.g. train.batch_size")
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
            raise ConfigError(f"--set {text!r}: unknown section [{section}]; allowed: {', '.join(SECTIONS)}")
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
        "Generated from the sections (`simulator/config.py`, `auction/config.py`, `models/config.py`) by",
        "`python -m simulator.config > docs/configuration.md`;",
        "a test fails when this file and the code disagree. Set keys in a scenario TOML file or with",
        "`adfloor run --set section.key=value` (values in TOML syntax: `true`, `1.5`, `\"exp\"`, `[1, 2]`).",
        "",
    ]
    for name, cls in SECTIONS.items():
        lines += [f"## [{name}]", "", "| key | default | allowed | meaning |", "|---|---|---|---|"]
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            meta = f.metadata
            lo, hi = meta.get("lo"), meta.get("hi")
            if meta.get("choices"):
                allowed = " / ".join(f"`{c}`" for c in meta["choices"])
            elif meta.get("item_choices"):
                allowed = "list of " + " / ".join(f"`{c}`" for c in meta["item_choices"])
            elif lo is not None or hi is not None:
                allowed = f"{lo if lo is not None else '−∞'} … {hi if hi is not None else '∞'}"
            else:
                allowed = type(default).__name__
            shown = tomli_w.dumps({"v": default})[4:].strip()
            lines.append(f"| `{name}.{f.name}` | `{shown}` | {allowed} | {meta.get('doc', '')} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(reference_markdown(), end="")
