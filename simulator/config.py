"""Typed, validated scenario configuration: TOML in, frozen dataclasses out, one-line errors naming the field."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from models.losses import BIAS_SLICES
from ui_treatments import CATALOGUE


class ConfigError(ValueError):
    """A bad scenario: the message is one line naming the field and what is allowed."""


def _spec(default, *, lo=None, hi=None, choices=None, may_be_empty=False, doc=""):
    """A config field with its allowed range (inclusive bounds) or choices, checked by `validate`.

    A list field with a non-empty default must stay non-empty unless `may_be_empty`."""
    meta = {"lo": lo, "hi": hi, "choices": choices, "may_be_empty": may_be_empty, "doc": doc}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class RunConfig:
    seed: int = _spec(0, lo=0, doc="the one seed every random stream is split from")
    duration_hours: float = _spec(24.0, lo=0.01, hi=24.0 * 365, doc="simulated time to run")
    tick_minutes: float = _spec(1.0, lo=0.01, hi=60.0, doc="traffic is emitted as one batch per tick")
    checkpoint_every_minutes: float = _spec(60.0, lo=0.0, hi=1e7, doc="simulated minutes between checkpoints of "
                                                                      "`adfloor run` (0 = none); `--resume DIR` continues")
    probe_every: int = _spec(32, lo=0, hi=1_000_000, doc="every n-th query's pCTRs (all candidates, treatments, "
                                                            "positions) are kept, for prediction differences (0 = off)")


@dataclass(frozen=True)
class TrafficConfig:
    queries_per_minute: float = _spec(1000.0, lo=0.0, hi=1e7, doc="mean arrival rate over a day")
    diurnal_amplitude: float = _spec(0.5, lo=0.0, hi=1.0, doc="rate = mean × (1 + a·cos(2π(h − peak)/24))")
    peak_hour: float = _spec(20.0, lo=0.0, hi=24.0, doc="hour of the day with the highest rate")


@dataclass(frozen=True)
class WorldConfig:
    num_topics: int = _spec(20, lo=1, hi=10_000, doc="query/ad topics; topic popularity is Zipf-like")
    num_intents: int = _spec(4, lo=1, hi=100, doc="query intent levels; higher intent clicks more")
    num_advertisers: int = _spec(100, lo=1, hi=1_000_000, doc="each has a topic, a quality and a value per click")
    initial_ads: int = _spec(500, lo=1, hi=1_000_000, doc="ads live at the start")
    ad_arrivals_per_hour: float = _spec(8.0, lo=0.0, hi=1e6, doc="new ads (cold start); as many leave on average")
    candidates_per_query: int = _spec(20, lo=1, hi=256, doc="ads retrieved per query")
    same_topic_share: float = _spec(0.75, lo=0.0, hi=1.0, doc="share of candidates from the query's own topic")
    num_positions: int = _spec(4, lo=1, hi=5, doc="ad slots K; ≤ 5 because the exact auction enumerates (K+1)^K slates")
    position_effects: list = _spec([1.0, 0.65, 0.45, 0.3], doc="true examination per position, top first")
    treatments: list = _spec(["text", "text_extensions", "image"], doc="treatment names from ui_treatments")
    relevance_base: float = _spec(-3.3, lo=-20.0, hi=5.0, doc="logit of relevance for an average ad")
    advertiser_quality_sd: float = _spec(0.6, lo=0.0, hi=5.0, doc="spread of advertiser quality (logit)")
    ad_quality_sd: float = _spec(0.6, lo=0.0, hi=5.0, doc="spread of an ad's quality around its advertiser's (logit)")
    topic_match_effect: float = _spec(1.2, lo=0.0, hi=10.0, doc="logit boost when query and ad topics match")
    intent_effect: float = _spec(0.4, lo=0.0, hi=5.0, doc="logit gain per intent level")
    bid_log_mean: float = _spec(0.0, lo=-10.0, hi=10.0, doc="bids per click are lognormal")
    bid_log_sd: float = _spec(0.5, lo=0.0, hi=5.0, doc="spread of advertiser values (bids are truthful)")


@dataclass(frozen=True)
class AuctionConfig:
    reserve: float = _spec(0.3, lo=0.0, hi=1e6, doc="per-click reserve (uniform); the base of per-advertiser reserves; "
                                                    "the score reserve R when quality-weighted")
    reserve_kind: str = _spec("uniform", choices=("uniform", "quality_weighted", "per_advertiser"),
                              doc="quality_weighted: reserve_i = R / pCTR_i (text, top); per_advertiser: "
                                  "reserve × a lognormal factor per advertiser")
    advertiser_reserve_sd: float = _spec(0.5, lo=0.0, hi=5.0, doc="per_advertiser: spread of the log factor")
    reserve_mode: str = _spec("cost", choices=("cost", "filter"),
                              doc="cost: reserve as a per-click seller cost (Clarke on Σ(bid − reserve)·ctr); "
                                  "filter: bid ≤ reserve is dropped, threshold payments")
    page_height_budget: float = _spec(0.0, lo=0.0, hi=1000.0,
                                      doc="lines of page the ads may take (0 = no budget); heights come from ui_treatments")
    exploration_rate: float = _spec(0.0, lo=0.0, hi=1.0, doc="share of queries whose auction ranks on perturbed pCTRs "
                                                            "(exploration: rarely shown ads get shown and learned)")
    exploration_noise: float = _spec(0.7, lo=0.0, hi=5.0, doc="explored queries: each candidate's pCTR × "
                                                             "exp(σ·z − σ²/2), z ~ N(0, 1); σ = this")


@dataclass(frozen=True)
class ModelConfig:
    oracle: bool = _spec(False, doc="score with the world's true CTR instead of a learned model")
    transfer: str = _spec("sigmoid", choices=("sigmoid", "exp"), doc="τ in pCTR = τ(Q·U)")
    activation: str = _spec("relu", choices=("relu", "smelu", "gsmelu", "swish", "gelu", "softplus"),
                            doc="hidden-layer activation of both towers")
    smelu_beta: float = _spec(1.0, lo=1e-6, hi=100.0, doc="SmeLU half-width β of the quadratic region")
    gsmelu_alpha: float = _spec(1.0, lo=1e-6, hi=100.0, doc="gSmeLU: left end −α of the quadratic region")
    gsmelu_beta: float = _spec(1.0, lo=1e-6, hi=100.0, doc="gSmeLU: right end β of the quadratic region")
    gsmelu_g_minus: float = _spec(0.0, lo=-10.0, hi=10.0, doc="gSmeLU: slope g₋ left of −α")
    gsmelu_g_plus: float = _spec(1.0, lo=-10.0, hi=10.0, doc="gSmeLU: slope g₊ right of β (must exceed g₋)")
    gsmelu_t: float = _spec(0.0, lo=-100.0, hi=0.0, doc="gSmeLU: value t at −α (≤ 0 to cross the origin)")
    normalization: str = _spec("none", choices=("none", "layer", "weight"),
                               doc="hidden layers of both towers: layer norm of each pre-activation, or weight norm "
                                   "(every neuron's incoming weights kept at L2 norm model.weight_norm)")
    weight_norm: float = _spec(1.0, lo=1e-3, hi=1000.0, doc="weight norm: the L2 norm v of every hidden neuron's "
                                                           "incoming weights")
    activation_clip: float = _spec(0.0, lo=0.0, hi=1000.0, doc="clip hidden activations to [−c, c] (0 = no clipping)")
    embedding_dim: int = _spec(8, lo=1, hi=512, doc="width of every embedding")
    quality_hidden: list = _spec([64, 32], may_be_empty=True, doc="Q tower MLP widths ([] = Q is a linear map of the "
                                                                  "embeddings)")
    ui_hidden: list = _spec([16], may_be_empty=True, doc="U tower MLP widths ([] = a linear map of the UI features)")
    interaction_dim: int = _spec(8, lo=1, hi=512, doc="length of the Q and U vectors")
    ad_buckets: int = _spec(8192, lo=16, hi=10_000_000, doc="hash buckets for ad ids")
    cross_buckets: int = _spec(16384, lo=16, hi=10_000_000, doc="hash buckets for query-topic × ad")
    init_seed: int = _spec(0, lo=0, doc="nuisance seed of the initialisation")
    architecture: str = _spec("factorized", choices=("factorized", "unfactorized"),
                              doc="factorized: τ(Q·U), U cached per (treatment, position); unfactorized: one tower "
                                  "with treatment/position as input features, run per (candidate, treatment, position)")
    dcn_layers: int = _spec(0, lo=0, hi=8, doc="DCNv2 low-rank cross layers on the Q tower's embedding input (0 = none)")
    dcn_rank: int = _spec(8, lo=1, hi=512, doc="rank k of each cross layer's U·V")
    bottleneck_dim: int = _spec(0, lo=0, hi=8192, doc="low-rank bottleneck k: every Q-tower layer m→n with k < min(m, n) "
                                                      "becomes m→k→n (0 = none)")
    embedding_init_std: float = _spec(0.0, lo=0.0, hi=10.0, doc="std of the normal initialisation of every embedding "
                                                                 "(0 = Flax's default, 1/√embedding_dim)")
    ensemble_size: int = _spec(1, lo=1, hi=16, doc="self-ensemble components, each initialised differently; "
                                                   "pCTR = their mean")
    position_feature: bool = _spec(True, doc="the U tower (or the unfactorized tower) sees the position; false = a "
                                             "misspecified model that cannot tell a low slot from a weak ad")


@dataclass(frozen=True)
class TrainConfig:
    learning_rate: float = _spec(0.05, lo=1e-8, hi=100.0, doc="learning rate (of the dense layers when "
                                                                "embedding_learning_rate is set)")
    adagrad_initial_accumulator: float = _spec(0.1, lo=0.0, hi=100.0, doc="AdaGrad's initial accumulator "
                                                                           "(also Shampoo's grafting AdaGrad)")
    batch_size: int = _spec(512, lo=1, hi=1_000_000, doc="examples per gradient step (single pass)")
    optimizer: str = _spec("adagrad", choices=("adagrad", "adam", "shampoo"),
                           doc="dense layers' optimizer; embeddings stay on AdaGrad except with adam")
    embedding_learning_rate: float = _spec(0.0, lo=0.0, hi=100.0, doc="embeddings' learning rate (0 = learning_rate)")
    embedding_l2: float = _spec(0.0, lo=0.0, hi=100.0, doc="L2 weight on the embeddings")
    scaling_base_batch_size: int = _spec(0, lo=0, hi=1_000_000,
                                         doc="CowClip scaling rule: for batch = s × this, dense lr × √s, embedding "
                                             "lr kept (AdaGrad's initial accumulator ÷ s²), embedding L2 × s (0 = no "
                                             "scaling)")
    shampoo_block_size: int = _spec(128, lo=1, hi=4096, doc="Shampoo: preconditioner block size")
    shampoo_update_every: int = _spec(10, lo=1, hi=100_000, doc="Shampoo: steps between inverse-root refreshes")
    shampoo_momentum: float = _spec(0.9, lo=0.0, hi=0.999, doc="Shampoo: Nesterov momentum (0 = none)")
    shampoo_start_preconditioning: int = _spec(10, lo=0, hi=1_000_000_000,
                                               doc="Shampoo: steps on AdaGrad's direction before preconditioning (a "
                                                   "huge value = AdaGrad with Shampoo's momentum: its like-for-like "
                                                   "control)")
    cowclip: bool = _spec(False, doc="CowClip: clip each Q-embedding row's gradient to cnt·max(r‖w‖, ζ)")
    cowclip_r: float = _spec(1.0, lo=0.0, hi=1000.0, doc="CowClip ratio r")
    cowclip_zeta: float = _spec(1e-4, lo=0.0, hi=100.0, doc="CowClip lower bound ζ")
    rank_loss_weight: float = _spec(0.0, lo=0.0, hi=0.99, doc="α₁: loss = α₁·RankNet (pairs of ads of the same query) "
                                                               "+ (1 − α₁)·log loss")
    distillation_weight: float = _spec(0.0, lo=0.0, hi=1.0, doc="two-pass distillation: a teacher trains first on each "
                                                                 "batch; target = (1 − w)·click + w·teacher PV (0 = off)")
    teacher_width_multiplier: int = _spec(2, lo=1, hi=16, doc="the teacher's Q-tower widths × this")
    loss_curriculum: str = _spec("none", choices=("none", "linear", "cosine"),
                                 doc="ramp of the rank, distillation and bias terms from 0 to full weight")
    loss_curriculum_examples: int = _spec(200_000, lo=1, hi=10**10, doc="examples the curriculum ramp takes")
    bias_constraints: list = _spec([], doc="slice families with one dual variable per slice: position, treatment, "
                                           "pctr_decile, advertiser (empty = off)")
    bias_alpha: float = _spec(0.01, lo=1e-6, hi=1e6, doc="α₃: L2 on the duals (λ settles at slice bias / α₃)")
    bias_learning_rate: float = _spec(1.0, lo=0.0, hi=1e6, doc="gradient-ascent step of the dual variables")
    anti_distillation_weight: float = _spec(0.0, lo=0.0, hi=100.0, doc="ensembles: weight of the loss pushing the "
                                                                         "components apart")
    num_devices: int = _spec(1, lo=1, hi=1024, doc="data-parallel training over this many jax devices "
                                                   "(batch_size must be a multiple)")
    shuffle_seed: int = _spec(0, lo=0, hi=255, doc="nuisance seed of the training order: > 0 trains the logs that reach the trainer together (a tick's) in a query order drawn from it, roughly chronological like a distributed pipeline (0 = arrival order)")
    training_delay_minutes: float = _spec(5.0, lo=0.0, hi=10_000.0, doc="logs reach the trainer this late")
    deploy_every_minutes: float = _spec(15.0, lo=0.01, hi=100_000.0, doc="a snapshot is taken this often")
    deploy_delay_minutes: float = _spec(2.0, lo=0.0, hi=10_000.0, doc="a snapshot goes live this late")
    divergence_factor: float = _spec(3.0, lo=0.0, hi=1e6, doc="stop when PV log loss over the last ~2,000 examples "
                                                                "exceeds this × the oracle's (0 = never); NaN/inf always stop")
    divergence_warmup_examples: int = _spec(20_000, lo=0, hi=10**9, doc="examples trained before the factor is checked "
                                                                                  "(at least 20 batches)")


@dataclass(frozen=True)
class DataConfig:
    negative_keep_rate: float = _spec(1.0, lo=1e-4, hi=1.0, doc="share of non-clicked examples kept for training "
                                                                  "(kept ones weigh 1/rate)")
    low_position_keep_rate: float = _spec(1.0, lo=1e-4, hi=1.0, doc="share kept of examples at position ≥ "
                                                                      "low_position_from")
    low_position_from: int = _spec(2, lo=0, hi=4, doc="first position (0 = top) counted as low")
    low_pctr_keep_rate: float = _spec(1.0, lo=1e-4, hi=1.0, doc="share kept of non-clicked examples whose served "
                                                                  "pCTR < low_pctr_threshold (low log loss)")
    low_pctr_threshold: float = _spec(0.01, lo=0.0, hi=1.0, doc="see low_pctr_keep_rate")


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
    """Coerce and check one field's value; raise ConfigError naming `key` on anything off."""
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
        if not isinstance(value, list) or (default and not value and not meta["may_be_empty"]):
            raise ConfigError(f"{key}: expected a {'non-empty ' if default else ''}list, got {value!r}")
        value = list(value)
    if meta["choices"] is not None and value not in meta["choices"]:
        raise ConfigError(f"{key}: {value!r} is not allowed; allowed: {', '.join(map(str, meta['choices']))}")
    lo, hi = meta["lo"], meta["hi"]
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"{lo if lo is not None else '-inf'} ≤ value ≤ {hi if hi is not None else 'inf'}"
        raise ConfigError(f"{key}: {value!r} is out of range; allowed: {bounds}")
    return value


def _check_lists(s: Scenario) -> None:
    """Cross-field checks on list-valued fields."""
    w, m = s.world, s.model
    names = {t.name for t in CATALOGUE}
    for name in w.treatments:
        if name not in names:
            raise ConfigError(f"world.treatments: unknown treatment {name!r}; allowed: {', '.join(sorted(names))}")
    if len(set(w.treatments)) != len(w.treatments):
        raise ConfigError("world.treatments: names must be distinct")
    if len(w.position_effects) != w.num_positions:
        raise ConfigError(
            f"world.position_effects: needs {w.num_positions} numbers (world.num_positions), got {len(w.position_effects)}"
        )
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x <= 1 for x in w.position_effects):
        raise ConfigError("world.position_effects: each must be a number in (0, 1]")
    if m.gsmelu_g_plus <= m.gsmelu_g_minus:
        raise ConfigError(f"model.gsmelu_g_plus: must exceed model.gsmelu_g_minus ({m.gsmelu_g_minus:g}), got {m.gsmelu_g_plus:g}")
    t = s.train
    for name in t.bias_constraints:
        if name not in BIAS_SLICES:
            raise ConfigError(f"train.bias_constraints: unknown slice {name!r}; allowed: {', '.join(BIAS_SLICES)}")
    if len(set(t.bias_constraints)) != len(t.bias_constraints):
        raise ConfigError("train.bias_constraints: slice families must be distinct")
    if t.batch_size % t.num_devices:
        raise ConfigError(f"train.num_devices: batch_size {t.batch_size} must be a multiple of it, got {t.num_devices}")
    for key, widths in (("model.quality_hidden", m.quality_hidden), ("model.ui_hidden", m.ui_hidden)):
        if not all(isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= 8192 for x in widths):
            raise ConfigError(f"{key}: each width must be an integer in 1..8192, got {widths!r}")


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
    scenario = Scenario(**sections)
    _check_lists(scenario)
    return scenario


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


SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"  # the shipped scenarios


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


def load(path: str | Path | None = None, overrides: list[str] | None = None, seed: int | None = None) -> Scenario:
    """Load a scenario file (or the defaults), apply overrides and an optional seed, validate."""
    data = read_toml(path) if path is not None else {}
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
        "Generated from `simulator/config.py` by `python -m simulator.config > docs/configuration.md`;",
        "a test fails when this file and the code disagree. Set keys in a scenario TOML file or with",
        "`adfloor run --set section.key=value` (values in TOML syntax: `true`, `1.5`, `\"exp\"`, `[1, 2]`).",
        "",
    ]
    for name, cls in SECTIONS.items():
        lines += [f"## [{name}]", "", "| key | default | allowed | meaning |", "|---|---|---|---|"]
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            meta = f.metadata
            if meta["choices"]:
                allowed = " / ".join(f"`{c}`" for c in meta["choices"])
            elif meta["lo"] is not None or meta["hi"] is not None:
                allowed = f"{meta['lo'] if meta['lo'] is not None else '−∞'} … {meta['hi'] if meta['hi'] is not None else '∞'}"
            else:
                allowed = type(default).__name__
            shown = tomli_w.dumps({"v": default})[4:].strip()
            lines.append(f"| `{name}.{f.name}` | `{shown}` | {allowed} | {meta['doc']} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(reference_markdown(), end="")
