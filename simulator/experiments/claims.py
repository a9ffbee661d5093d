"""Claims as pre-registered tests: a claim's measure (a registered operation over "arm.metric" numbers per
seed), verdict rule, control and switch check; `evaluate` (a 95 % t-interval over seeds: reproduced yes / no /
not testable) and the sanity checks. A study file declares its claims (`study.load_study`);
`report.claims_report` runs the cells and writes the verdicts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.experiments.checks import StudyError, check_keys, typed
from simulator.measure.definitions import METRIC_DOC
from simulator.measure.intervals import interval

EXPECTS = ("decrease", "increase", "non_inferior")


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator without raising: nan for 0 / 0 (e.g. a churn of 0 in both arms), ±inf for x / 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.float64(numerator) / np.float64(denominator))


def log_of_ratio(numerator: float, denominator: float) -> float:
    """log(numerator / denominator): ratios of positive quantities (PD, churn, bias) compare on a log scale, where a
    halving and a doubling weigh the same; nan where the ratio is undefined (0 / 0), so the claim is not testable."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.log(ratio(numerator, denominator)))


def percent_change(value: float, base: float) -> float:
    """100 × (value / base − 1); nan where base is 0."""
    return 100 * (ratio(value, base) - 1)


@dataclass(frozen=True)
class Operation:
    """A measure's arithmetic over its operands' numbers (`arity` operands per group)."""

    function: Callable[..., float]
    arity: int
    shape: str  # how a study file writes the operands


def _mean_log_ratio(*values: float) -> float:
    return float(np.mean([log_of_ratio(a, b) for a, b in zip(values[::2], values[1::2])]))


MEASURES = {
    "value": Operation(float, 1, "one"),
    "difference": Operation(lambda a, b: float(a - b), 2, "a pair [a, b] (a − b)"),
    "ratio": Operation(ratio, 2, "a pair [a, b] (a / b)"),
    "log_ratio": Operation(log_of_ratio, 2, "a pair [a, b] (log(a / b))"),
    "mean_log_ratio": Operation(_mean_log_ratio, 2, "a list of pairs [[a, b], ...] (the mean of their log ratios)"),
}


@dataclass(frozen=True)
class Measure:
    """One number per seed: `MEASURES[op]` over the (arm, metric) operands, read from that seed's results by arm."""

    op: str
    operands: tuple[tuple[str, str], ...]

    def __call__(self, by_arm: dict[str, dict]) -> float:
        return MEASURES[self.op].function(*(by_arm[arm][metric] for arm, metric in self.operands))

    @property
    def arms(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(arm for arm, _ in self.operands))


@dataclass(frozen=True)
class Claim:
    """A pre-registered test: its effect, verdict rule (and, for non-inferiority, its control) are fixed in its
    study file before any run; `measure` gives the effect per seed, the 95 % t-interval of its mean decides.

    expect "decrease": reproduced when the interval lies below 0; "increase": above 0; "non_inferior": its
    lower end is ≥ −margin, the same test fails for `control` (the setting without the technique), and
    technique − control (per seed) lies above 0 — a non-inferiority the control also shows cannot credit
    the technique. With `acts`, the switch must first be shown to act (that number's interval above 0),
    else there is no verdict. `side` are further per-seed numbers reported beside the effect.
    """

    id: str
    claim: str
    source: str
    effect: str
    measure: Measure
    expect: str
    margin: float = 0.0
    side: tuple[tuple[str, Measure], ...] = ()
    why_not: str = ""
    control: Measure | None = None
    control_label: str = ""
    acts: Measure | None = None  # the switch acts: a per-seed number whose interval must lie above 0 first
    acts_label: str = ""

    def __post_init__(self):
        if self.expect not in EXPECTS:
            raise ValueError(f"claim {self.id}: expect {self.expect!r} is not allowed")
        if self.expect == "non_inferior" and self.control is None:
            raise ValueError(f"claim {self.id}: a non-inferiority claim needs a control that must fail the same test")

    @property
    def arms(self) -> tuple[str, ...]:
        """Every arm the claim reads: it is evaluated only where all of them ran on every seed."""
        measures = (self.measure, self.control, self.acts, *(m for _, m in self.side))
        return tuple(dict.fromkeys(arm for m in measures if m is not None for arm in m.arms))

    def verdict(self, low: float, high: float) -> bool:
        if self.expect == "decrease":
            return bool(high < 0)
        if self.expect == "increase":
            return bool(low > 0)
        return bool(low >= -self.margin)

    def definition(self) -> dict:
        """What was registered before the run (saved beside every verdict)."""
        return {"arms": list(self.arms), "effect": self.effect, "expect": self.expect, "margin": self.margin,
                "control": self.control_label or None, "acts": self.acts_label or None,
                "side": [name for name, _ in self.side],
                "interval": "95 % t-interval of the mean over seeds (n − 1 degrees of freedom)"}


def _interval_entry(values: list[float]) -> dict:
    mean, half = interval(values)
    return {"mean": mean, "ci95": [mean - half, mean + half], "per_seed": values}


def evaluate(claims: tuple[Claim, ...], results: list[dict], seeds: list[int]) -> list[dict]:
    """One entry per claim whose arms ran on every seed: the registered definition, per-seed effects, mean,
    95 % interval and verdict (with, for non-inferiority, the control's own test)."""
    by_seed = {seed: {r["arm"]: r for r in results if r["seed"] == seed} for seed in seeds}
    entries = []
    for claim in claims:
        if not all(arm in by_seed[s] for s in seeds for arm in claim.arms):
            continue
        values = [float(claim.measure(by_seed[s])) for s in seeds]
        effect = _interval_entry(values)
        low, high = effect["ci95"]
        testable = bool(np.all(np.isfinite(values)))  # the measure is defined on every seed
        reproduced = claim.verdict(low, high) if testable and np.isfinite(high - low) else False
        why_not = claim.why_not
        control, acts = None, None
        if claim.control is not None:
            control_values = [float(claim.control(by_seed[s])) for s in seeds]
            control = _interval_entry(control_values)
            control["passes"] = claim.verdict(*control["ci95"])
            control["label"] = claim.control_label
            gain = _interval_entry([v - c for v, c in zip(values, control_values)])  # technique − control, paired
            control["gain"] = gain
            testable = testable and bool(np.all(np.isfinite(control_values)))
            if reproduced and (control["passes"] or not gain["ci95"][0] > 0):
                reproduced = False
                why_not = (f"The control ({claim.control_label}) passes the same test, so passing it cannot credit "
                           "the technique." if control["passes"] else
                           "Technique − control does not lie above 0: the technique is not shown to beat its control.")
        if claim.acts is not None:
            acts = _interval_entry([float(claim.acts(by_seed[s])) for s in seeds])
            acts["label"] = claim.acts_label
            if not acts["ci95"][0] > 0:
                testable, reproduced = False, False
                why_not = f"The switch is not shown to act ({claim.acts_label}: its interval does not lie above 0)."
        reproduced = reproduced and testable
        side = {}
        for name, measure in claim.side:
            side_values = [float(measure(by_seed[s])) for s in seeds]
            side_mean, side_half = interval(side_values)
            side[name] = {"mean": side_mean, "ci95": side_half, "per_seed": side_values}
        entries.append({"id": claim.id, "claim": claim.claim, "source": claim.source, "effect": claim.effect,
                        "expect": claim.expect, "margin": claim.margin, "definition": claim.definition(),
                        "per_seed": values, "mean": effect["mean"], "ci95": [low, high], "reproduced": reproduced,
                        "testable": testable, "control": control, "acts": acts, "side": side,
                        "why_not": "" if reproduced else why_not})
    return entries


# ---- reading claims from a study file ------------------------------------------------------------------------
def measure_from_toml(spec: Any, where: str, rows: dict[str, Callable[[str], str]],
                      label: bool = False) -> tuple[Measure, str]:
    """A measure table such as {log_ratio = ["smelu.pd", "baseline.pd"]} (and its `label` where one is needed);
    `rows` says for each arm why it lacks a metric ("" where it has it)."""
    allowed = (*MEASURES, "label") if label else tuple(MEASURES)
    spec = check_keys(spec, where, allowed, ("label",) if label else ())
    ops = [key for key in spec if key in MEASURES]
    if len(ops) != 1:
        raise StudyError(f"{where}: give exactly one of {', '.join(MEASURES)}")
    op = ops[0]
    operands = spec[op]
    flat = [operands] if isinstance(operands, str) else [x for pair in operands for x in (pair if isinstance(pair, list) else [pair])]
    if not all(isinstance(x, str) for x in flat) or len(flat) % MEASURES[op].arity or not flat:
        raise StudyError(f"{where}.{op}: expected {MEASURES[op].shape} of \"arm.metric\" references, got {operands!r}")
    refs = []
    for ref in flat:
        arm, _, metric = ref.rpartition(".")  # arm names may hold dots (relu_order_lr0.025); metric names do not
        if arm not in rows:
            raise StudyError(f"{where}.{op}: unknown arm {arm!r} in {ref!r}; arms: {', '.join(sorted(rows))}")
        if metric not in METRIC_DOC:
            raise StudyError(f"{where}.{op}: unknown metric {metric!r} in {ref!r} (metrics: measure/definitions.py)")
        if rows[arm](metric):
            raise StudyError(f"{where}.{op}: {ref!r}: {rows[arm](metric)}")
        refs.append((arm, metric))
    label_text = spec.get("label", "")
    if label and not isinstance(label_text, str):
        raise StudyError(f"{where}.label: expected a string")
    return Measure(op, tuple(refs)), label_text


def claim_from_toml(data: Any, where: str, rows: dict[str, Callable[[str], str]], why: dict[str, str]) -> Claim:
    data = check_keys(data, where, ("id", "claim", "source", "effect", "expect", "measure", "margin", "control",
                                     "acts", "side"), ("id", "claim", "source", "effect", "expect", "measure"))
    for key in ("id", "claim", "source", "effect"):
        typed(data[key], f"{where}.{key}", str, "a string")
    if not re.fullmatch(r"[\w.]+", data["id"]):
        raise StudyError(f"{where}.id: {data['id']!r}: use letters, digits, _ and . only (it names files and headings)")
    if data["expect"] not in EXPECTS:
        raise StudyError(f"{where}.expect: {data['expect']!r} is not allowed; allowed: {', '.join(EXPECTS)}")
    margin = typed(data.get("margin", 0.0), f"{where}.margin", (int, float), "a number ≥ 0")
    if margin < 0:
        raise StudyError(f"{where}.margin: expected a number ≥ 0, got {margin!r}")
    if (data["expect"] == "non_inferior") != ("control" in data):
        raise StudyError(f"{where}.control: a non-inferiority claim needs a control that must fail the same test, "
                         "and only such a claim takes one")
    measure, _ = measure_from_toml(data["measure"], f"{where}.measure", rows)
    control, control_label = measure_from_toml(data["control"], f"{where}.control", rows, label=True) if "control" in data else (None, "")
    acts, acts_label = measure_from_toml(data["acts"], f"{where}.acts", rows, label=True) if "acts" in data else (None, "")
    side_specs = data.get("side", [])
    if not isinstance(side_specs, list):
        raise StudyError(f"{where}.side: expected a list of measure tables with labels")
    side = tuple(measure_from_toml(s, f"{where}.side[{i}]", rows, label=True)[::-1] for i, s in enumerate(side_specs))
    return Claim(data["id"], data["claim"], data["source"], data["effect"], measure, data["expect"], float(margin),
                 side, why.get(data["id"], ""), control, control_label, acts, acts_label)
