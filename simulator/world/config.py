"""The world's sections of a scenario, owned by the world: its traffic over the day, and its entities, pages and
click model. `simulator.config` composes them with the other packages' sections and validates them."""

from __future__ import annotations

import dataclasses

from dataclasses import dataclass

from models.config import config_field
from ui_treatments import CATALOGUE


@dataclass(frozen=True)
class TrafficConfig:
    queries_per_minute: float = config_field(1000.0, lo=0.0, hi=1e7, doc="queries per simulated minute, averaged over the day (the rate follows the time of day)")
    diurnal_amplitude: float = config_field(0.5, lo=0.0, hi=1.0, doc="rate = mean × (1 + a·cos(2π(h − peak)/24))")
    peak_hour: float = config_field(20.0, lo=0.0, hi=24.0, doc="hour of the day with the highest rate")
    weekly_amplitude: float = config_field(0.0, lo=0.0, hi=1.0, doc="weekly cycle: the rate is also × (1 + w·cos(2π(day − "
                                                                  "peak_weekday)/7)), day counted in days since the start")
    peak_weekday: float = config_field(0.0, lo=0.0, hi=7.0, doc="day of the week (0 = the run's first day) with the "
                                                               "highest rate")


WORLD_KINDS = ("teaching", "realistic")  # the classes behind them: simulator.world.kinds.WORLD_KINDS (one test checks)
# The hashed crosses each kind's feature spec gives the model, as model.omit_crosses names them (one test checks them
# against World.feature_spec), so a scenario that omits a cross its world lacks is refused at load.
WORLD_CROSSES = {"teaching": ("ad_id*query_topic",),
                 "realistic": ("ad_id*query_topic", "ad_id*query_id", "ad_id*device", "ad_topic*hour")}


@dataclass(frozen=True)
class WorldConfig:
    kind: str = config_field("teaching", choices=WORLD_KINDS,
                             doc="teaching: true CTR = relevance(ad quality, intent, topic match) × examination, the model "
                                 "class contains the truth; realistic: a query vocabulary with a long tail, campaigns "
                                 "with targeting, user context, and latent-factor relevance with context effects "
                                 "(docs/world.md). The keys marked (realistic) act only there, and "
                                 "another world refuses them away from their defaults")
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
    click_model: str = config_field("position_based", choices=("position_based", "cascade"),
                                    doc="position_based: an ad's CTR depends on its own position only; cascade: the "
                                        "dynamic Bayesian network (users go down the page, stop when a click "
                                        "satisfies them), so the ads above change an ad's CTR "
                                        "(simulator/world/click_models.py)")
    cascade_continue: float = config_field(0.9, lo=0.0, hi=1.0, doc="cascade: γ, the chance a user goes on to the next "
                                                                   "ad when not satisfied")
    cascade_satisfaction: float = config_field(0.5, lo=0.0, hi=1.0, doc="cascade: σ, the chance a click satisfies the "
                                                                       "user, who then stops")
    trust_false_click: float = config_field(0.0, lo=0.0, hi=1.0,
                                            doc="trust term (with either click model; 0 = off): ε⁻, the chance a user "
                                                "who looks at the top ad clicks it though it does not attract them, "
                                                "ε⁻ / r at page rank r: users trust what the page puts first "
                                                "(Vardasbi et al. 2020, as ULTRA's TrustBiasedModel)")
    trust_true_click_drop: float = config_field(0.0, lo=0.0, hi=0.1,
                                                doc="trust term: an attracted user who looks clicks with chance "
                                                    "1 − drop·(r + 1) at page rank r (0.01 in Vardasbi et al. 2020; "
                                                    "0 = always; ≤ 0.1 keeps it ≥ 0.1 down a page of 8)")
    relevance_base: float = config_field(-3.3, lo=-20.0, hi=5.0, doc="logit of relevance for an average ad")
    advertiser_quality_sd: float = config_field(0.6, lo=0.0, hi=5.0, doc="spread of advertiser quality (logit)")
    ad_quality_sd: float = config_field(0.6, lo=0.0, hi=5.0, doc="spread of an ad's quality around its advertiser's (logit)")
    topic_match_effect: float = config_field(1.2, lo=0.0, hi=10.0, doc="logit boost when query and ad topics match")
    intent_effect: float = config_field(0.4, lo=0.0, hi=5.0, doc="logit gain per intent level")
    bid_log_mean: float = config_field(0.0, lo=-10.0, hi=10.0, doc="bids per click are lognormal")
    bid_log_sd: float = config_field(0.5, lo=0.0, hi=5.0, doc="spread of advertiser values (bids are truthful)")
    num_queries: int = config_field(100_000, lo=1, hi=100_000_000, doc="(realistic) query vocabulary: distinct query ids")
    query_zipf_exponent: float = config_field(1.0, lo=0.0, hi=3.0, doc="(realistic) query popularity ∝ rank^−s")
    query_bias_sd: float = config_field(0.5, lo=0.0, hi=5.0, doc="(realistic) spread of a query's own click propensity "
                                                                 "(logit)")
    num_users: int = config_field(1_000_000, lo=1, hi=100_000_000, doc="(realistic) users who search; each query's user "
                                                                      "is a feature (hashed), most seen once a day")
    user_zipf_exponent: float = config_field(0.8, lo=0.0, hi=3.0, doc="(realistic) a user's share of the queries ∝ "
                                                                      "activity rank^−s")
    user_bias_sd: float = config_field(0.3, lo=0.0, hi=5.0, doc="(realistic) spread of a user's own click propensity (logit)")
    campaigns_per_advertiser: int = config_field(4, lo=1, hi=10_000, doc="(realistic) campaigns of each advertiser; an "
                                                                        "ad belongs to one")
    exact_match_share: float = config_field(0.5, lo=0.0, hi=1.0, doc="(realistic) share of campaigns that target query "
                                                                     "ids (keywords); the rest target their topic")
    keywords_per_campaign: int = config_field(20, lo=1, hi=100_000, doc="(realistic) query ids an exact-match campaign "
                                                                        "targets, drawn from its topic by popularity")
    broad_match_rate: float = config_field(0.3, lo=0.0, hi=1.0,
                                           doc="(realistic) chance that a topic-targeting ad is retrieved for a query of "
                                               "its topic at the highest intent (lower intents proportionally less)")
    latent_dim: int = config_field(8, lo=1, hi=256, doc="(realistic) length of the query and ad latent vectors")
    latent_scale: float = config_field(1.0, lo=0.0, hi=10.0, doc="(realistic) logit spread of the query·ad interaction")
    topic_latent_share: float = config_field(0.5, lo=0.0, hi=1.0,
                                             doc="(realistic) share of a latent vector's variance from its topic's centre")
    num_regions: int = config_field(10, lo=1, hi=100_000, doc="(realistic) user regions (Zipf-like shares)")
    device_topic_sd: float = config_field(0.3, lo=0.0, hi=5.0, doc="(realistic) logit spread of device × ad topic effects")
    format_effect_sd: float = config_field(0.3, lo=0.0, hi=5.0,
                                           doc="(realistic) log spread of each format's lift over the first treatment by "
                                               "ad topic, by device and per intent level: formats act differently on "
                                               "different ads and contexts")
    quality_drift_sd: float = config_field(0.0, lo=0.0, hi=5.0, doc="(realistic) ad quality drifts: a random walk "
                                                                   "with this logit spread per √day")
    novelty_effect: float = config_field(0.0, lo=0.0, hi=5.0, doc="(realistic) logit boost of a new ad, decaying with "
                                                                 "time constant novelty_hours")
    novelty_hours: float = config_field(24.0, lo=0.01, hi=1e5, doc="(realistic) time constant of the novelty boost")
    fatigue_effect: float = config_field(0.0, lo=0.0, hi=5.0, doc="(realistic) logit an ad loses as it ages (creative "
                                                                 "fatigue), reached with time constant fatigue_days")
    fatigue_days: float = config_field(7.0, lo=0.01, hi=1e4, doc="(realistic) time constant of creative fatigue")
    initial_ad_age_days: float = config_field(30.0, lo=0.0, hi=1e4, doc="(realistic) the initial ads' ages are uniform "
                                                                       "over this many days before the start")
    dormant_advertiser_share: float = config_field(0.0, lo=0.0, hi=0.99, doc="(realistic) share of advertisers not "
                                                                              "advertising at the start (they may enter)")
    advertiser_churn_per_day: float = config_field(0.0, lo=0.0, hi=10.0,
                                                   doc="(realistic) share of the active advertisers that leave per day "
                                                       "(their ads go); as many dormant ones enter on average, each with "
                                                       "initial_ads / active advertisers new ads")
    trend_bursts_per_day: float = config_field(0.0, lo=0.0, hi=1000.0, doc="(realistic) bursts of interest in one topic "
                                                                         "per day (Poisson)")
    trend_multiplier: float = config_field(5.0, lo=1.0, hi=1000.0, doc="(realistic) a bursting topic's traffic share × this")
    trend_hours: float = config_field(3.0, lo=0.01, hi=1000.0, doc="(realistic) how long a burst lasts")
    hour_topic_sd: float = config_field(0.2, lo=0.0, hi=5.0, doc="(realistic) logit spread of hour of day × ad topic "
                                                                 "effects")

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
        if self.kind != "realistic":
            moved = next((f.name for f in dataclasses.fields(self) if f.metadata.get("doc", "").startswith("(realistic)")
                          and getattr(self, f.name) != (f.default_factory() if f.default is dataclasses.MISSING
                                                        else f.default)), None)
            if moved is not None:
                raise ValueError(f"{moved}: acts only in the realistic world (world.kind = \"realistic\"); this one is "
                                 f"{self.kind!r}")
        if self.kind == "realistic" and self.broad_match_rate == 0 and self.exact_match_share == 0:
            raise ValueError("broad_match_rate: 0 with exact_match_share 0 retrieves no ad for any query")
        longest = max(len(effects) for effects in layouts)
        if longest != self.num_positions:
            what = "the longest page's positions" if devices > 1 else "its length"
            raise ValueError(f"position_effects: needs {self.num_positions} numbers (num_positions), got {longest} ({what})")
        for device, effects, top in zip(self.devices, layouts, self.top_slots):
            if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= len(effects):
                raise ValueError(f"top_slots: {device}'s must be an integer from 1 to its {len(effects)} positions, got {top!r}")

    @property
    def trust(self) -> bool:
        """Whether the trust term is on."""
        return self.trust_false_click > 0 or self.trust_true_click_drop > 0

    def page_lengths(self) -> list[int]:
        """Each device's page positions (top and bottom)."""
        return [len(effects) for effects in self.layouts()]

    def top_positions(self) -> list[int]:
        """Each device's positions above the results."""
        return list(self.top_slots) or self.page_lengths()
