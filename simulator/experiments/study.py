"""Studies as data: a TOML file declares a study's scenario, seeds, hours, arms, protocols, claims, tables and
figure groups; `load_study` checks all of it before anything runs (a typo is a one-line `StudyError`
naming the file and the place, not a silently missing claim). `docs/studies.md` documents the format;
`studies/claims.toml` is the claims report.

An arm is a name plus config overrides. Each (arm, seed) runs the study's scenario with that seed, so all
arms of a seed see the same queries and user noise (paired replays). Arms marked `replica` also run a
second system that differs only in the nuisance seed (`model.init_seed = 1`, or the training order with
`nuisance = "order"`) in its own closed loop, and the open-loop control (the replica trained on the
primary's logs).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator import config
from simulator.config import ConfigError
from simulator.experiments.checks import StudyError, check_keys, strings, typed
from simulator.experiments.claims import Claim, claim_from_toml, evaluate
from simulator.experiments.protocols import OFFLINE, PROTOCOL_CELLS
from simulator.measure.definitions import METRIC_DOC, OFFLINE_METRICS, PROTOCOL_METRICS, REPLICA_METRICS

STUDIES = config.shipped("studies")
REPLICA_INIT_SEED = 1
NUISANCES = ("init", "order")


def study_file(name: str) -> Path:
    """The shipped study `name` ("claims", ...)."""
    return STUDIES / f"{name}.toml"


@dataclass(frozen=True)
class Arm:
    name: str
    overrides: tuple[str, ...]
    replica: bool = False  # also run a nuisance-seed replica and the open-loop control
    nuisance: str = "init"  # what the replica changes: "init" (model.init_seed 0 → 1) or "order" (train.shuffle_seed 1 → 2)

    def scenarios(self, seed: int, hours: float, scenario_path: str | Path | dict) -> tuple:
        """The primary's scenario and, for replica arms, the replica's (None otherwise)."""
        order = ("train.shuffle_seed=1",) if self.nuisance == "order" else ()
        primary = config.load(scenario_path, [*self.overrides, *order, f"run.duration_hours={hours}"], seed=seed)
        if not self.replica:
            return primary, None
        nuisance = {"train__shuffle_seed": 2} if self.nuisance == "order" else {"model__init_seed": REPLICA_INIT_SEED}
        return primary, config.replace(primary, **nuisance)


@dataclass(frozen=True)
class BatchScaling:
    """CowClip's offline protocol: each setting trains `epochs` shuffled passes over one run's logs."""

    settings: dict[str, tuple[str, ...]]
    epochs: int


@dataclass(frozen=True)
class Mature:
    """`--mature`: the claims about mature, retrained models, each arm run from its own model and world after
    `warm_start_hours` of the same scenario (`run.warm_start_hours`), measured over the window after that."""

    warm_start_hours: float
    claims: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    title: str
    arms: tuple[str, ...]
    metrics: tuple[str, ...]


@dataclass(frozen=True)
class Frontier:
    """A figure of PD against the log-loss gap: one line per group of arms."""

    title: str
    lines: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class Study:
    name: str
    path: Path
    description: str
    scenario: Path
    seeds: tuple[int, ...]
    hours: float
    arms: dict[str, Arm]
    claims: tuple[Claim, ...] = ()
    tables: tuple[Table, ...] = ()
    auction: bool = False  # the VCG-vs-GSP sanity checks on the world's own pages
    batch_scaling: BatchScaling | None = None
    frontiers: dict[str, Frontier] = field(default_factory=dict)
    attribution_arms: tuple[str, ...] = ()  # the credit-attribution section and figure
    feedback_arms: tuple[str, ...] = ()  # the feedback-loop section and figure
    quick_seeds: tuple[int, ...] | None = None  # `--quick`: these seeds and hours, the claims' and sections' arms
    quick_hours: float | None = None
    mature: Mature | None = None
    warm_start_hours: float = 0.0  # every arm's run.warm_start_hours: the scenario's, or [mature]'s in `mature_pass`

    @property
    def replica_arms(self) -> list[str]:
        return [name for name, arm in self.arms.items() if arm.replica]

    @property
    def quick_arms(self) -> list[str]:
        """The claims' arms and the sections' arms (the protocols' cells run anyway)."""
        wanted = {*self.claim_arms, *self.attribution_arms, *self.feedback_arms}
        return [name for name in self.arms if name in wanted]

    @property
    def claim_arms(self) -> list[str]:
        """The arms the claims read (the protocols' rows aside), in the study's order."""
        wanted = {arm for claim in self.claims for arm in claim.arms}
        return [name for name in self.arms if name in wanted]

    def mature_pass(self) -> Study:
        """The study's [mature] pass: its mature claims only, every arm warm-started (so each cell has its own cache
        key); no protocols, and no attribution or feedback-loop section (both read a run from its cold start); run
        it on `claim_arms`."""
        if self.mature is None:
            raise StudyError(f"--mature: the study {str(self.path)!r} has no [mature] table")
        warm = f"run.warm_start_hours={self.mature.warm_start_hours:g}"
        return dataclasses.replace(
            self, arms={name: dataclasses.replace(arm, overrides=(*arm.overrides, warm)) for name, arm in self.arms.items()},
            claims=tuple(claim for claim in self.claims if claim.id in self.mature.claims), auction=False,
            batch_scaling=None, attribution_arms=(), feedback_arms=(), quick_seeds=None, quick_hours=None,
            warm_start_hours=self.mature.warm_start_hours)

    def evaluate(self, results: list[dict], seeds: list[int]) -> list[dict]:
        return evaluate(self.claims, results, seeds)

    def plan(self, quick: bool = False, seeds: int | None = None, first_seed: int | None = None,
             hours: float | None = None) -> tuple[list[int], float, list[str] | None]:
        """The seeds, hours and arms (None: all) of a run: the study's own (or with `quick` its [quick] ones), or
        `seeds` seeds from `first_seed` (0 unless given); `first_seed` alone moves the study's count of seeds there."""
        if quick and self.quick_seeds is None:
            raise StudyError(f"--quick: the study {str(self.path)!r} has no [quick] table")
        own = list(self.quick_seeds if quick else self.seeds)
        count = seeds if seeds is not None else len(own) if first_seed is not None else None
        chosen = own if count is None else list(range(first_seed or 0, (first_seed or 0) + count))
        if len(chosen) < 2:
            raise StudyError("--seeds: need at least 2 seeds for an interval (the claims study uses 5)")
        hours = hours if hours is not None else (self.quick_hours or self.hours) if quick else self.hours
        return chosen, hours, self.quick_arms if quick else None

    def on_scenario(self, value: str) -> Study:
        """The same study on another scenario (a shipped name or a .toml path), its arms re-checked there; call it
        before `mature_pass`, whose arms carry their warm start as an override."""
        scenario = scenario_path(value, Path.cwd(), "--scenario")
        warm = _check_overrides((), scenario, f"--scenario {value}").run.warm_start_hours
        for arm in self.arms.values():
            _arm_warm_start(_check_overrides(arm.overrides, scenario, f"--scenario {value}: arms.{arm.name}.overrides"),
                            warm, f"--scenario {value}: arms.{arm.name}.overrides")
        return dataclasses.replace(self, scenario=scenario, warm_start_hours=warm)


# ---- reading and checking a study file ------------------------------------------------------------------------
def _seeds(value: Any, where: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 2:
        return tuple(range(value))
    if isinstance(value, list) and len(value) >= 2 and all(isinstance(s, int) and s >= 0 for s in value):
        if len(set(value)) != len(value):
            raise StudyError(f"{where}: seeds repeat: {value}")
        return tuple(value)
    raise StudyError(f"{where}: expected a count ≥ 2 or a list of ≥ 2 distinct seeds ≥ 0 (an interval needs two)")


def _hours(value: Any, where: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise StudyError(f"{where}: expected simulated hours > 0, got {value!r}")
    return float(value)


def _mature(spec: Any, claims_by_id: dict[str, Claim], scenario: Path, where: str) -> Mature:
    spec = check_keys(spec, where, ("warm_start_hours", "claims"), ("warm_start_hours", "claims"))
    hours = _hours(spec["warm_start_hours"], f"{where}.warm_start_hours")
    _check_overrides((f"run.warm_start_hours={hours:g}",), scenario, f"{where}.warm_start_hours")
    claims = strings(spec["claims"], f"{where}.claims")
    unknown = [claim for claim in claims if claim not in claims_by_id]
    if unknown or not claims:
        raise StudyError(f"{where}.claims: " + (f"unknown claim {unknown[0]!r}; claims: {', '.join(claims_by_id)}"
                                                if unknown else "name at least one claim"))
    offline = [claim for claim in claims if any(arm.startswith(OFFLINE) for arm in claims_by_id[claim].arms)]
    if offline:
        raise StudyError(f"{where}.claims: {offline[0]!r} reads the batch-scaling protocol's rows, which train offline "
                         "over logs, not a warm-started run")
    return Mature(hours, claims)


def _expand(overrides: tuple[str, ...], groups: dict[str, tuple[str, ...]], where: str) -> tuple[str, ...]:
    """Replace each "@group" by that group's overrides."""
    expanded = []
    for item in overrides:
        if item.startswith("@"):
            if item[1:] not in groups:
                raise StudyError(f"{where}: unknown group {item!r}; groups: {', '.join(groups) or 'none'}")
            expanded += groups[item[1:]]
        else:
            expanded.append(item)
    return tuple(expanded)


def _check_overrides(overrides: tuple[str, ...], scenario: Path, where: str) -> config.Scenario:
    try:
        return config.load(scenario, list(overrides))
    except ConfigError as err:
        raise StudyError(f"{where}: {err}") from None


def _arm_warm_start(arm_scenario: config.Scenario, warm_start_hours: float, where: str) -> None:
    """Refuse an arm that warm-starts unlike the scenario: a study's arms start alike (its [mature] table warm-starts
    them all), and its report states one warm start."""
    if arm_scenario.run.warm_start_hours != warm_start_hours:
        raise StudyError(f"{where}: run.warm_start_hours: this arm's {arm_scenario.run.warm_start_hours:g} h, the "
                         f"scenario's {warm_start_hours:g} h; every arm of a study starts alike (drop the override; the "
                         "study's [mature] table warm-starts them all)")


def scenario_path(value: str, base: Path, where: str) -> Path:
    """A study's scenario: a shipped name ("default", "smoke") or a .toml path relative to `base`."""
    path = config.find_scenario(value, base).resolve()
    if path.suffix != ".toml" or not path.is_file():
        raise StudyError(f"{where}: no such scenario {value!r} (a shipped name such as \"smoke\", or a .toml file)")
    return path


def _arm_lacks(arm: Arm, scenario: config.Scenario) -> Callable[[str], str]:
    """Why an arm's results lack a metric ("" where they have it)."""
    def lacks(metric: str) -> str:
        if metric in REPLICA_METRICS and not arm.replica:
            return f"arm {arm.name!r} runs no replica, so it has no {metric} (set replica = true)"
        if metric in PROTOCOL_METRICS:
            return f"{metric} is a batch-scaling protocol number (rows offline_<setting>), not an arm's"
        if metric == "component_spread" and scenario.model.ensemble_size < 2:
            return f"arm {arm.name!r} is no ensemble (model.ensemble_size < 2), so it has no component_spread"
        if metric == "clipped_share" and not scenario.train.cowclip:
            return f"arm {arm.name!r} does not use CowClip, so it has no clipped_share"
        return ""
    return lacks


def _offline_lacks(metric: str) -> str:
    return "" if metric in OFFLINE_METRICS else f"a batch-scaling row has only {', '.join(OFFLINE_METRICS)}"


def _explanations(path: Path, where: str) -> dict[str, str]:
    """The "why it may not reproduce here" prose: a markdown file with a `## <claim id>` section per claim."""
    if not path.is_file():
        raise StudyError(f"{where}: no such file {str(path)!r}")
    sections, current = {}, None
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            current = line[3:].strip().strip("`")
            sections[current] = []
        elif current is not None and line.strip():
            sections[current].append(line.strip())
    return {claim_id: " ".join(lines) for claim_id, lines in sections.items()}


def load_study(path: str | Path) -> Study:
    """Read and check a study file: every key, arm, override, reference and metric (see the module docstring)."""
    path = Path(path)
    where = str(path)
    try:
        data = config.read_toml(path)
    except ConfigError as err:
        raise StudyError(str(err).replace("scenario file", "study file")) from None
    data = check_keys(data, where, ("name", "description", "scenario", "seeds", "hours", "quick", "mature", "explanations",
                                     "groups", "arms", "protocols", "report", "frontiers", "tables", "claims"),
                       ("scenario", "seeds", "hours", "arms"))
    scenario = scenario_path(typed(data["scenario"], f"{where}: scenario", str, "a scenario file or a shipped name"),
                             path.parent, f"{where}: scenario")
    warm_start_hours = _check_overrides((), scenario, f"{where}: scenario").run.warm_start_hours
    quick = check_keys(data.get("quick", {}), f"{where}: quick", ("seeds", "hours"))
    groups = {name: strings(items, f"{where}: groups.{name}")
              for name, items in check_keys(data.get("groups", {}), f"{where}: groups", tuple(data.get("groups", {}))).items()}
    arms, lacks = {}, {}
    for name, spec in typed(data["arms"], f"{where}: arms", dict, "a table of arms").items():
        at = f"{where}: arms.{name}"
        if name in PROTOCOL_CELLS or name.startswith(OFFLINE):
            raise StudyError(f"{at}: the name is taken by a protocol")
        spec = check_keys(spec, at, ("overrides", "replica", "nuisance"))
        overrides = _expand(strings(spec.get("overrides", []), f"{at}.overrides"), groups, f"{at}.overrides")
        arm_scenario = _check_overrides(overrides, scenario, f"{at}.overrides")
        _arm_warm_start(arm_scenario, warm_start_hours, f"{at}.overrides")
        if spec.get("nuisance", "init") not in NUISANCES:
            raise StudyError(f"{at}.nuisance: {spec['nuisance']!r} is not allowed; allowed: {', '.join(NUISANCES)}")
        replica = typed(spec.get("replica", False), f"{at}.replica", bool, "true or false")
        if "nuisance" in spec and not replica:
            raise StudyError(f"{at}.nuisance: only an arm with replica = true has a nuisance")
        arms[name] = Arm(name, overrides, replica, spec.get("nuisance", "init"))
        lacks[name] = _arm_lacks(arms[name], arm_scenario)
    if "baseline" not in arms:
        raise StudyError(f"{where}: arms.baseline: required (every arm is compared on the baseline's traffic)")
    protocols = check_keys(data.get("protocols", {}), f"{where}: protocols", PROTOCOL_CELLS)
    batch_scaling = None
    if "batch_scaling" in protocols:
        at = f"{where}: protocols.batch_scaling"
        spec = check_keys(protocols["batch_scaling"], at, ("epochs", "settings"), ("epochs", "settings"))
        epochs = typed(spec["epochs"], f"{at}.epochs", int, "an integer ≥ 1")
        settings = {}
        for name, items in typed(spec["settings"], f"{at}.settings", dict, "a table of settings").items():
            settings[name] = _expand(strings(items, f"{at}.settings.{name}"), groups, f"{at}.settings.{name}")
            _check_overrides(settings[name], scenario, f"{at}.settings.{name}")
        if epochs < 1 or not settings:
            raise StudyError(f"{at}: needs epochs ≥ 1 and at least one setting")
        batch_scaling = BatchScaling(settings, epochs)
    lacks.update({OFFLINE + name: _offline_lacks for name in (batch_scaling.settings if batch_scaling else ())})
    rows = set(lacks)

    def known_arms(items: Any, at: str, allowed: set[str] = rows) -> tuple[str, ...]:
        names = strings(items, at)
        unknown = [n for n in names if n not in allowed]
        if unknown:
            raise StudyError(f"{at}: unknown arm {unknown[0]!r}; arms: {', '.join(sorted(allowed))}")
        return names

    report = check_keys(data.get("report", {}), f"{where}: report", ("attribution_arms", "feedback_arms"))
    frontiers = {}
    for name, spec in typed(data.get("frontiers", {}), f"{where}: frontiers", dict, "a table of figures").items():
        at = f"{where}: frontiers.{name}"
        spec = check_keys(spec, at, ("title", "lines"), ("title", "lines"))
        frontiers[name] = Frontier(typed(spec["title"], f"{at}.title", str, "a string"),
                                   {label: known_arms(items, f"{at}.lines.{label}", set(arms))
                                    for label, items in typed(spec["lines"], f"{at}.lines", dict, "a table").items()})
        single = [a for arms_ in frontiers[name].lines.values() for a in arms_ if not arms[a].replica]
        if single:
            raise StudyError(f"{at}.lines: arm {single[0]!r} runs no replica, so it has no PD to draw")
    tables = []
    for index, spec in enumerate(typed(data.get("tables", []), f"{where}: tables", list, "a list of tables")):
        at = f"{where}: tables[{index}]"
        spec = check_keys(spec, at, ("title", "arms", "metrics"), ("title", "arms", "metrics"))
        metrics = strings(spec["metrics"], f"{at}.metrics")
        unknown = [m for m in metrics if m not in METRIC_DOC]
        if unknown:
            raise StudyError(f"{at}.metrics: unknown metric {unknown[0]!r} (metrics: measure/definitions.py)")
        table_arms = known_arms(spec["arms"], f"{at}.arms")
        if len(table_arms) < 2:
            raise StudyError(f"{at}.arms: a table compares at least two arms (each against the first)")
        tables.append(Table(typed(spec["title"], f"{at}.title", str, "a string"), table_arms, metrics))
    why = _explanations((path.parent / data["explanations"]).resolve(), f"{where}: explanations") \
        if "explanations" in data else {}
    claims = tuple(claim_from_toml(spec, f"{where}: claims[{i}]", lacks, why)
                   for i, spec in enumerate(typed(data.get("claims", []), f"{where}: claims", list, "a list of claims")))
    ids = [claim.id for claim in claims]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise StudyError(f"{where}: claims: the id {repeated[0]!r} is used twice")
    mature = _mature(data["mature"], {claim.id: claim for claim in claims}, scenario, f"{where}: mature") \
        if "mature" in data else None
    orphans = sorted(set(why) - set(ids))
    if orphans:
        raise StudyError(f"{where}: explanations: section {orphans[0]!r} names no claim of this study")
    return Study(
        name=typed(data.get("name", path.stem), f"{where}: name", str, "a string"), path=path,
        description=typed(data.get("description", ""), f"{where}: description", str, "a string"),
        scenario=scenario, seeds=_seeds(data["seeds"], f"{where}: seeds"), hours=_hours(data["hours"], f"{where}: hours"),
        arms=arms, claims=claims, tables=tuple(tables), auction=typed(protocols.get("auction", False),
                                                                        f"{where}: protocols.auction", bool, "true or false"),
        batch_scaling=batch_scaling, frontiers=frontiers,
        attribution_arms=known_arms(report.get("attribution_arms", []), f"{where}: report.attribution_arms", set(arms)),
        feedback_arms=known_arms(report.get("feedback_arms", []), f"{where}: report.feedback_arms", set(arms)),
        quick_seeds=_seeds(quick["seeds"], f"{where}: quick.seeds") if "seeds" in quick else None,
        quick_hours=_hours(quick["hours"], f"{where}: quick.hours") if "hours" in quick else None, mature=mature,
        warm_start_hours=warm_start_hours)
