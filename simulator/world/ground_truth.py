"""The ground-truth world: advertisers, ads, queries, retrieval and the user click model.

True CTR(q, a, t, p) = relevance(q, a) × examination(t, slot), with
relevance = sigmoid(base + advertiser quality + ad quality + topic match + intent) and
examination = position_effect[slot] × treatment multiplier[t] / max multiplier (so the best treatment at
the top is examined with probability 1). Everything here is known to the world, so the oracle CTR of
every shown ad can be logged beside its click.

Pages. Each query is on a device, and each device has its own page: its positions (top slots, then bottom
slots) with their own position effects. The slots of every device's page are numbered one after another
(the world's S slots; with one device, slot = position): examination is [T, S], `slot_of[device, position]`
says which slot a page position is, and the model sees the slot as its position feature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from auction.reserves import RESERVE_KINDS
from models import FeatureSpec, ModelConfig
from simulator.world.click_models import CLICK_MODELS
from simulator.config import AuctionConfig, Scenario
from simulator.world.config import TrafficConfig, WorldConfig
from ui_treatments import treatment_arrays, treatments_by_name

# Columns of the raw query×ad feature array handed to the model.
FEATURE_FIELDS: tuple[str, ...] = ("query_topic", "query_intent", "ad_id", "advertiser", "ad_topic")


def draw_index(cdf: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """int32 indices drawn from a cumulative distribution by inversion (the last index for uniforms past its end)."""
    return np.minimum(np.searchsorted(cdf, uniform, side="right"), len(cdf) - 1).astype(np.int32)


def diurnal_rate(traffic: TrafficConfig, minute: float) -> float:
    """Queries per minute at simulated `minute`: mean × (1 + a·cos(2π(hour − peak)/24)), and × (1 + w·cos(2π(day −
    peak day)/7)) with a weekly cycle."""
    hour = (minute / 60.0) % 24.0
    rate = traffic.queries_per_minute * (1.0 + traffic.diurnal_amplitude * np.cos(2 * np.pi * (hour - traffic.peak_hour) / 24.0))
    if traffic.weekly_amplitude:  # off: the rate exactly as without a weekly cycle
        day = (minute / 1440.0) % 7.0
        rate *= 1.0 + traffic.weekly_amplitude * np.cos(2 * np.pi * (day - traffic.peak_weekday) / 7.0)
    return rate


@dataclass
class QueryBatch:
    """One tick of queries with their retrieved candidates.

    topic, intent, device: int32[B]; candidates: int32[B, N] indices into the world's ad arrays;
    valid: bool[B, N] (False where retrieval ran out of ads); features: int32[B, N, F] (FEATURE_FIELDS);
    relevance: float32[B, N] true relevance; bid, reserve: float32[B, N] per click (0 where invalid; the
    reserve is the score reserve R when reserves are quality-weighted);
    click_noise: float32[B, N] uniforms — a shown candidate is clicked iff noise < its true CTR, so two
    systems shown the same traffic share user noise (common random numbers); lift: float32[B, N, T] each candidate's
    own examination factor per treatment (all 1 in the teaching world, where formats act the same on every ad):
    true CTR = relevance × lift[treatment] × examination[treatment, slot] under the position-based click model;
    cascade_noise: float32[B, K, 2] the cascade click model's uniforms per query and position (go on, satisfied),
    None under the position-based model.
    """

    topic: np.ndarray
    intent: np.ndarray
    candidates: np.ndarray
    valid: np.ndarray
    features: np.ndarray
    relevance: np.ndarray
    bid: np.ndarray
    reserve: np.ndarray
    click_noise: np.ndarray
    device: np.ndarray
    lift: np.ndarray
    cascade_noise: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(self.topic.shape[0])


# The world's random streams.
STREAMS = ("world", "traffic", "click")


@dataclass
class WorldState:
    """What of the world changes during a run: the ad arrays (AD_ARRAYS) and each stream's bit-generator state."""

    ads: dict[str, np.ndarray]
    streams: dict[str, dict]


class World:
    """The teaching world: ground truth plus its random streams. `reset(seed)` builds it; `queries` and `churn`
    advance it; `state()` / `restore(state)` read and set what changes; `feature_spec` says what the model sees."""

    # The arrays that change during a run (ads arrive and leave), and the raw feature columns of a query × ad.
    ad_arrays: tuple[str, ...] = ("ad_advertiser", "ad_topic", "ad_quality", "ad_bid", "ad_active", "ad_born_minute")
    feature_fields: tuple[str, ...] = FEATURE_FIELDS
    page_fields: tuple[str, ...] = ("query_topic", "query_intent")  # the same for every ad of a page

    def __init__(self, scenario: Scenario):
        self.config: WorldConfig = scenario.world
        self.traffic: TrafficConfig = scenario.traffic
        self.auction: AuctionConfig = scenario.auction
        treatments = treatments_by_name(self.config.treatments)
        arrays = treatment_arrays(treatments)
        self.treatment_heights = arrays["height"]
        self.treatment_features = arrays["features"]
        multiplier = arrays["examination"] / arrays["examination"].max()
        layouts = self.config.layouts()
        effects = np.concatenate([np.asarray(e, np.float32) for e in layouts])
        self.examination = (multiplier[:, None] * effects[None, :]).astype(np.float32)  # [T, S]
        self.num_slots = int(effects.size)
        self.page_positions = np.array(self.config.page_lengths(), np.int32)  # [D] positions of each device's page
        first = np.concatenate([[0], np.cumsum(self.page_positions)[:-1]])
        positions = np.arange(self.config.num_positions)
        # [D, K]: the slot of each page position (past a page's end its last slot; the auction never fills those)
        self.slot_of = (first[:, None] + np.minimum(positions[None, :], self.page_positions[:, None] - 1)).astype(np.int32)
        on_page = positions[None, :] < self.page_positions[:, None]
        # [D, T, K]: examination at each device's page positions, 0 past its end
        self.page_examination = np.where(on_page[:, None, :], np.moveaxis(self.examination[:, self.slot_of], 1, 0), 0.0
                                         ).astype(np.float32)
        self.is_top_slot = np.concatenate([np.arange(n) < top for n, top in zip(self.page_positions,
                                                                               self.config.top_positions())])  # [S]
        self._device_cdf = np.cumsum(self.config.device_shares)
        self.num_devices = len(layouts)

    def reset(self, seed: int) -> None:
        """Draw advertisers, the initial ads and topic popularity; split the traffic and click streams."""
        world_seq, traffic_seq, click_seq, reserve_seq = np.random.SeedSequence([seed, 0xAD]).spawn(4)
        self._world_rng = np.random.default_rng(world_seq)
        self._traffic_rng = np.random.default_rng(traffic_seq)
        self._click_rng = np.random.default_rng(click_seq)
        c, rng = self.config, self._world_rng
        self.advertiser_topic = rng.integers(0, c.num_topics, c.num_advertisers).astype(np.int32)
        self.advertiser_quality = rng.normal(0.0, c.advertiser_quality_sd, c.num_advertisers).astype(np.float32)
        self.advertiser_value = rng.lognormal(c.bid_log_mean, c.bid_log_sd, c.num_advertisers).astype(np.float32)
        popularity = 1.0 / np.arange(1, c.num_topics + 1) ** 0.8  # Zipf-like: some topics are rare
        self.topic_popularity = rng.permutation(popularity / popularity.sum())
        self._topic_cdf = np.cumsum(self.topic_popularity)
        # relevance logit of each intent level, base included (float32 keeps the hot path in float32)
        levels = np.arange(c.num_intents) - (c.num_intents - 1) / 2.0
        self._intent_logit = (c.relevance_base + c.intent_effect * levels).astype(np.float32)
        a = self.auction
        factor = np.random.default_rng(reserve_seq).lognormal(0.0, a.advertiser_reserve_sd, c.num_advertisers)
        if not RESERVE_KINDS[a.reserve_kind].advertiser_factors:
            factor = np.ones_like(factor)
        self.advertiser_reserve = (a.reserve * factor).astype(np.float32)
        self._draw_entities()
        self.ad_advertiser = np.zeros(0, np.int32)
        self.ad_topic = np.zeros(0, np.int32)
        self.ad_quality = np.zeros(0, np.float32)
        self.ad_bid = np.zeros(0, np.float32)
        self.ad_active = np.zeros(0, bool)
        self.ad_born_minute = np.zeros(0, np.float32)
        self._add_ads(c.initial_ads, minute=0.0)

    def _draw_entities(self) -> None:
        """Entities beyond advertisers and topics, drawn before the first ads (none in the teaching world)."""

    def _streams(self) -> dict[str, np.random.Generator]:
        return dict(zip(STREAMS, (self._world_rng, self._traffic_rng, self._click_rng)))

    def state(self) -> WorldState:
        """A copy of what changes during a run."""
        return WorldState({name: getattr(self, name).copy() for name in self.ad_arrays},
                          {name: rng.bit_generator.state for name, rng in self._streams().items()})

    def restore(self, state: WorldState) -> None:
        """Set what changes during a run (the rest comes from `reset` with the same seed)."""
        for name in self.ad_arrays:
            setattr(self, name, state.ads[name].copy())
        for name, rng in self._streams().items():
            rng.bit_generator.state = state.streams[name]

    def feature_spec(self, model: ModelConfig) -> FeatureSpec:
        """What the model sees of a query × ad (FEATURE_FIELDS), with the model's hash sizes."""
        c = self.config
        return FeatureSpec.teaching(c.num_topics, c.num_intents, c.num_advertisers, model.ad_buckets, model.cross_buckets)

    @property
    def num_ads(self) -> int:
        """Ads ever created (ad ids are 0..num_ads−1)."""
        return int(self.ad_active.shape[0])

    def _add_ads(self, count: int, minute: float) -> None:
        c, rng = self.config, self._world_rng
        advertiser = rng.integers(0, c.num_advertisers, count).astype(np.int32)
        quality = self.advertiser_quality[advertiser] + rng.normal(0.0, c.ad_quality_sd, count).astype(np.float32)
        bid = self.advertiser_value[advertiser] * rng.lognormal(0.0, 0.2, count).astype(np.float32)
        self.ad_advertiser = np.concatenate([self.ad_advertiser, advertiser])
        self.ad_topic = np.concatenate([self.ad_topic, self.advertiser_topic[advertiser]])
        self.ad_quality = np.concatenate([self.ad_quality, quality.astype(np.float32)])
        self.ad_bid = np.concatenate([self.ad_bid, bid.astype(np.float32)])
        self.ad_active = np.concatenate([self.ad_active, np.ones(count, bool)])
        self.ad_born_minute = np.concatenate([self.ad_born_minute, np.full(count, minute, np.float32)])

    def churn(self, minute: float, minutes: float) -> None:
        """Ad churn over `minutes`: Poisson new ads arrive and as many random active ads leave on average."""
        expected = self.config.ad_arrivals_per_hour * minutes / 60.0
        arriving = int(self._world_rng.poisson(expected))
        leaving = int(self._world_rng.poisson(expected))
        active = np.flatnonzero(self.ad_active)
        if leaving and active.size > leaving:
            self.ad_active[self._world_rng.choice(active, leaving, replace=False)] = False
        if arriving:
            self._add_ads(arriving, minute)

    def queries(self, minute: float, tick_minutes: float) -> QueryBatch:
        """Draw this tick's queries (non-homogeneous Poisson count) and retrieve their candidates."""
        c, rng = self.config, self._traffic_rng
        count = int(rng.poisson(diurnal_rate(self.traffic, minute + tick_minutes / 2) * tick_minutes))
        topic = draw_index(self._topic_cdf, rng.random(count))
        intent = rng.integers(0, c.num_intents, count).astype(np.int32)
        candidates, valid = self._retrieve(topic, rng)
        ad = np.where(valid, candidates, 0).astype(np.int32)
        ad_topic = self.ad_topic[ad]
        logit = self.ad_quality[ad] + self._intent_logit[intent][:, None]
        logit += np.float32(c.topic_match_effect) * (ad_topic == topic[:, None])
        relevance = np.where(valid, 1.0 / (1.0 + np.exp(-logit)), 0.0).astype(np.float32)
        features = np.empty((*ad.shape, len(FEATURE_FIELDS)), np.int32)
        features[..., 0] = topic[:, None]
        features[..., 1] = intent[:, None]
        features[..., 2] = ad
        features[..., 3] = self.ad_advertiser[ad]
        features[..., 4] = ad_topic
        bid = np.where(valid, self.ad_bid[ad], np.float32(0.0))
        reserve = np.where(valid, self.advertiser_reserve[features[..., 3]], np.float32(0.0))
        click_noise = self._click_rng.random(ad.shape, dtype=np.float32)
        device = np.zeros(count, np.int32)
        if len(self._device_cdf) > 1:  # drawn last, so a one-device world's streams are as they were
            device = draw_index(self._device_cdf, rng.random(count))
        lift = np.ones((*ad.shape, self.examination.shape[0]), np.float32)
        return QueryBatch(topic, intent, ad, valid, features, relevance, bid, reserve, click_noise, device, lift,
                          self._cascade_noise(count))

    def _cascade_noise(self, count: int) -> np.ndarray | None:
        """The cascade click model's uniforms [count, K, 2] from the click stream (drawn last; None when unused)."""
        if not CLICK_MODELS[self.config.click_model].cascade_uniforms:
            return None
        return self._click_rng.random((count, self.config.num_positions, 2), dtype=np.float32)

    def slots(self, batch: QueryBatch) -> np.ndarray:
        """int32[B, K]: the slot of each of the batch's page positions."""
        return self.slot_of[batch.device]

    def _retrieve(self, topic: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Candidates per query: a random window of its topic's active ads plus a window of another topic's.

        Windows over a per-tick shuffle of each topic's ads give distinct candidates without a
        per-query loop; a topic with too few ads leaves the rest of its window invalid.
        """
        c = self.config
        active = np.flatnonzero(self.ad_active)
        order = active[np.lexsort((rng.random(active.size), self.ad_topic[active]))]
        counts = np.bincount(self.ad_topic[order], minlength=c.num_topics)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        same = int(round(c.candidates_per_query * c.same_topic_share)) if c.num_topics > 1 else c.candidates_per_query
        other_topic = (topic + 1 + rng.integers(0, max(c.num_topics - 1, 1), topic.size)) % c.num_topics
        parts = []
        for source, width in ((topic, same), (other_topic, c.candidates_per_query - same)):
            n = counts[source][:, None]
            offset = rng.integers(0, np.maximum(counts[source], 1))[:, None]
            slot = np.arange(width)[None, :]
            index = starts[source][:, None] + (offset + slot) % np.maximum(n, 1)
            parts.append((np.where(slot < n, order[np.minimum(index, order.size - 1)], -1)))
        candidates = np.concatenate(parts, axis=1)
        return candidates, candidates >= 0

def true_ctr(relevance, lift, examination):
    """relevance[B, N] × lift[B, N, T] × examination[T, K] → CTR[B, N, T, K]; numpy or jax arrays (jit it on hot
    paths)."""
    return relevance[:, :, None, None] * lift[:, :, :, None] * examination[None, None, :, :]

