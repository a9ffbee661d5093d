"""The realistic world (issue #17, items 1–2): a query vocabulary with a long tail, campaigns with targeting, user
context, and relevance with real interactions.

Entities. Query ids have Zipf-like popularity (rank^−s); each has a topic, an intent level, a bias and a latent
vector. Advertisers own campaigns; a campaign targets either query ids of its topic (exact match: keywords drawn by
popularity) or its whole topic (broad match). Each ad belongs to one campaign and has its own quality and latent
vector. Each query comes with context: device, region, hour of day, day of week, and its user (a population with
Zipf-like activity: most users a day sees search once, as the id tails of real logs need).

Relevance = sigmoid(base + intent + query bias + user bias + ad quality + topic match + latent_scale · q·a/√L
+ device × ad-topic + hour × ad-topic): the query·ad term and the context terms are interactions a model without
crosses or hidden layers cannot represent.

Presentation. A format's effect depends on the ad and the context: each format's lift over the first treatment is
exp(its ad-topic effect + its device effect + its slope × intent level), times the catalogue's multiplier, so the
true CTR = relevance × lift[treatment] × examination[treatment, slot] (capped at 1) is not a product of a
query-ad term and a treatment-position term, and τ(Q·U) approximates it better as d grows. The position curve is
each device's own (the pages of `world.position_effects`). Cascade clicks are a later item of the issue.

Retrieval. A query's candidates are the ads of campaigns with its id as a keyword, then ads of its topic's
broad-match campaigns, each retrieved with probability broad_match_rate × (intent + 1) / intents: the count varies
per query, none included.
"""

from __future__ import annotations

import numpy as np

from models import FeatureSpec, ModelConfig, SparseField
from models.config import ConfigError
from simulator.world.ground_truth import FEATURE_FIELDS, QueryBatch, World, diurnal_rate, draw_index

CONTEXT_FIELDS = ("query_id", "campaign", "device", "region", "hour", "weekday", "user")


def _latent(rng: np.random.Generator, centre: np.ndarray, topic_share: float) -> np.ndarray:
    """Unit-variance latent vectors: √share × their topic's centre + √(1 − share) × their own noise."""
    noise = rng.standard_normal(centre.shape)
    return (np.sqrt(topic_share) * centre + np.sqrt(1.0 - topic_share) * noise).astype(np.float32)


def _windows(count: np.ndarray, width: int, rng: np.random.Generator) -> np.ndarray:
    """int[B, width]: offsets into each row's list of `count` items, from a random start and wrapping (distinct
    items for the first min(count, width) offsets)."""
    start = rng.integers(0, np.maximum(count, 1))[:, None]
    return (start + np.arange(width)[None, :]) % np.maximum(count, 1)[:, None]


class RealisticWorld(World):
    """The realistic world: the teaching world's pages, traffic clock and click model, with the entities, context,
    relevance and retrieval of the module docstring."""

    ad_arrays = (*World.ad_arrays, "ad_campaign", "ad_vector", "advertiser_active")
    feature_fields = (*FEATURE_FIELDS, *CONTEXT_FIELDS)
    page_fields = (*World.page_fields, "query_id", "device", "region", "hour", "weekday", "user")

    def _draw_entities(self) -> None:
        c, rng = self.config, self._world_rng
        share = c.topic_latent_share
        self.topic_centre = rng.standard_normal((c.num_topics, c.latent_dim)).astype(np.float32)
        rank_weight = 1.0 / np.arange(1, c.num_queries + 1) ** c.query_zipf_exponent
        self.query_popularity = rng.permutation(rank_weight / rank_weight.sum())
        self._query_cdf = np.cumsum(self.query_popularity)
        self.query_topic = draw_index(self._topic_cdf, rng.random(c.num_queries))
        self.query_intent = rng.integers(0, c.num_intents, c.num_queries).astype(np.int32)
        self.query_bias = rng.normal(0.0, c.query_bias_sd, c.num_queries).astype(np.float32)
        self.query_vector = _latent(rng, self.topic_centre[self.query_topic], share)
        campaigns = c.num_advertisers * c.campaigns_per_advertiser
        self.campaign_advertiser = np.repeat(np.arange(c.num_advertisers, dtype=np.int32), c.campaigns_per_advertiser)
        self.campaign_exact = rng.random(campaigns) < c.exact_match_share
        self._draw_keywords(rng)
        region_weight = 1.0 / np.arange(1, c.num_regions + 1)
        self._region_cdf = np.cumsum(rng.permutation(region_weight / region_weight.sum()))
        self.device_topic = rng.normal(0.0, c.device_topic_sd, (self.num_devices, c.num_topics)).astype(np.float32)
        phase = rng.uniform(0.0, 2 * np.pi, c.num_topics)  # each topic peaks at its own hour
        hours = np.arange(24)[:, None]
        self.hour_topic = (np.sqrt(2.0) * c.hour_topic_sd * np.cos(2 * np.pi * hours / 24 + phase[None, :])
                           ).astype(np.float32)  # [24, topics], spread hour_topic_sd over the day
        # each format's log lift over the first treatment, by ad topic, device and intent level (the first's is 0)
        treatments, sd = self.examination.shape[0], c.format_effect_sd
        self.format_topic = rng.normal(0.0, sd, (treatments, c.num_topics)).astype(np.float32)
        self.format_device = rng.normal(0.0, sd, (treatments, self.num_devices)).astype(np.float32)
        self.format_intent = rng.normal(0.0, sd, treatments).astype(np.float32)
        for table in (self.format_topic, self.format_device, self.format_intent):
            table[0] = 0.0
        self.advertiser_active = rng.random(c.num_advertisers) >= c.dormant_advertiser_share
        if not self.advertiser_active.any():
            self.advertiser_active[rng.integers(c.num_advertisers)] = True
        self._refuse_retrieving_nothing()
        self.ad_campaign, self.ad_vector = np.zeros(0, np.int32), np.zeros((0, c.latent_dim), np.float32)
        self._index: dict | None = None
        # users from their own stream (the other entities' draws are as they were before users existed)
        user_rng = np.random.default_rng([self._seed, 0x05E])
        activity = 1.0 / np.arange(1, c.num_users + 1) ** c.user_zipf_exponent
        self._user_cdf = np.cumsum(activity / activity.sum())
        self.user_bias = user_rng.normal(0.0, c.user_bias_sd, c.num_users).astype(np.float32)

    def _refuse_retrieving_nothing(self) -> None:
        """A world in which no query could ever retrieve an ad is refused as it is built (ConfigError naming the
        field): an ad is retrieved by a keyword of its campaign, or broadly by a query of its advertiser's topic, and
        only advertisers that advertise now, or may enter later (advertiser churn), ever have ads."""
        c = self.config
        may_advertise = self.advertiser_active | (c.advertiser_churn_per_day > 0)
        by_keyword = may_advertise[self.campaign_advertiser[self.keyword_campaign]].any()
        broad = may_advertise[self.campaign_advertiser] & ~self.campaign_exact
        broadly = c.broad_match_rate > 0 and np.isin(self.advertiser_topic[self.campaign_advertiser[broad]],
                                                     self.query_topic).any()
        if not (by_keyword or broadly):
            raise ConfigError("world.exact_match_share: no advertiser that advertises has a campaign with a keyword "
                              "or one that matches broadly a query of its topic (no query id of those topics, or "
                              "broad_match_rate 0): no query would retrieve an ad")

    def _draw_keywords(self, rng: np.random.Generator) -> None:
        """Each exact-match campaign's keywords: query ids of its topic, drawn by popularity (distinct pairs
        `keyword_campaign`, `keyword_query`, sorted by campaign)."""
        c = self.config
        order = np.argsort(self.query_topic, kind="stable")
        topic_of = self.query_topic[order]
        mass = np.bincount(topic_of, self.query_popularity[order], minlength=c.num_topics)
        # cumulative popularity within each topic, shifted by the topic: one sorted array for every topic's draws
        within = np.cumsum(self.query_popularity[order]) - np.concatenate([[0], np.cumsum(mass)[:-1]])[topic_of]
        keyed = topic_of + within / np.maximum(mass[topic_of], 1e-300)
        self._topic_queries, self._topic_keyed, self._topic_mass = order, keyed, mass  # for draws within a topic
        exact = np.flatnonzero(self.campaign_exact)
        campaign = np.repeat(exact, c.keywords_per_campaign)
        topic = self.advertiser_topic[self.campaign_advertiser[campaign]]
        position = np.searchsorted(keyed, topic + rng.random(campaign.size) * (1 - 1e-12), side="left")
        query = order[np.minimum(position, order.size - 1)]
        keep = self.query_topic[query] == topic  # a topic with no queries gives its campaigns no keywords
        pairs = np.unique(np.stack([campaign[keep], query[keep]]), axis=1)
        self.keyword_campaign, self.keyword_query = pairs[0].astype(np.int32), pairs[1].astype(np.int32)
        by_query = np.argsort(self.keyword_query, kind="stable")  # the same pairs by query: retrieval's posting lists
        self._targeting_campaign = self.keyword_campaign[by_query]
        self._targeting_query = self.keyword_query[by_query]

    def reset(self, seed: int) -> None:
        self._seed = seed  # trend bursts are drawn per day from (seed, day): a schedule with no state to carry
        super().reset(seed)

    def _add_ads(self, count: int, minute: float, advertisers: np.ndarray | None = None) -> None:
        """`count` new ads in random campaigns of the active advertisers (of `advertisers` when given)."""
        c, rng = self.config, self._world_rng
        born = np.full(count, minute, np.float32)
        if self.ad_active.size == 0:  # the initial ads have been live for a while already
            born = (minute - rng.uniform(0.0, c.initial_ad_age_days * 1440.0, count)).astype(np.float32)
        owners = np.flatnonzero(self.advertiser_active) if advertisers is None else advertisers
        campaign = (owners[rng.integers(0, owners.size, count)] * c.campaigns_per_advertiser
                    + rng.integers(0, c.campaigns_per_advertiser, count)).astype(np.int32)
        advertiser = self.campaign_advertiser[campaign]
        topic = self.advertiser_topic[advertiser]
        quality = self.advertiser_quality[advertiser] + rng.normal(0.0, c.ad_quality_sd, count).astype(np.float32)
        bid = self.advertiser_value[advertiser] * rng.lognormal(0.0, 0.2, count).astype(np.float32)
        vector = _latent(rng, self.topic_centre[topic], c.topic_latent_share)
        new = dict(ad_advertiser=advertiser, ad_topic=topic, ad_quality=quality.astype(np.float32),
                   ad_bid=bid.astype(np.float32), ad_active=np.ones(count, bool),
                   ad_born_minute=born, ad_campaign=campaign, ad_vector=vector)
        for name, values in new.items():
            setattr(self, name, np.concatenate([getattr(self, name), values]))
        self._index = None

    def churn(self, minute: float, minutes: float) -> None:
        """Ads arrive and leave (as in the teaching world), advertisers leave (with their ads) and enter (with new
        ones), and the live ads' qualities drift (a random walk)."""
        before = self.ad_active.copy()
        super().churn(minute, minutes)
        if self.config.advertiser_churn_per_day:
            self._advertiser_churn(minute, minutes)
        if self.config.quality_drift_sd:
            active = np.flatnonzero(self.ad_active)
            step = self.config.quality_drift_sd * np.sqrt(minutes / 1440.0)
            self.ad_quality[active] += self._world_rng.normal(0.0, step, active.size).astype(np.float32)
        if self.ad_active.size != before.size or not np.array_equal(self.ad_active, before):
            self._index = None

    def _advertiser_churn(self, minute: float, minutes: float) -> None:
        c, rng = self.config, self._world_rng
        active, dormant = np.flatnonzero(self.advertiser_active), np.flatnonzero(~self.advertiser_active)
        expected = c.advertiser_churn_per_day * active.size * minutes / 1440.0
        leaving = min(int(rng.poisson(expected)), active.size - 1)
        entering = min(int(rng.poisson(expected)), dormant.size)
        if leaving:
            gone = rng.choice(active, leaving, replace=False)
            self.advertiser_active[gone] = False
            self.ad_active[np.isin(self.ad_advertiser, gone)] = False
        if entering:
            new = rng.choice(dormant, entering, replace=False)
            self.advertiser_active[new] = True
            per_advertiser = max(int(round(c.initial_ads / max(active.size, 1))), 1)
            self._add_ads(entering * per_advertiser, minute, advertisers=new)

    def restore(self, state) -> None:
        super().restore(state)
        self._index = None

    def _retrieval_index(self) -> dict:
        """The active ads' retrieval index, rebuilt when ads change. A query's exact-match ads are the ads of each
        campaign targeting it in turn: the keyword pairs by query (built once) give each pair's place in that
        virtual posting list, so no list of (query, ad) postings is built or sorted. Also the broad-match ads."""
        if self._index is None:
            c = self.config
            active = np.flatnonzero(self.ad_active)
            exact_ads = active[self.campaign_exact[self.ad_campaign[active]]]
            by_campaign = exact_ads[np.argsort(self.ad_campaign[exact_ads], kind="stable")]
            campaign_bounds = np.searchsorted(self.ad_campaign[by_campaign],
                                              np.arange(c.num_advertisers * c.campaigns_per_advertiser + 1))
            counts = np.diff(campaign_bounds)[self._targeting_campaign]  # the ads of each (keyword, campaign) pair
            pair_first = np.cumsum(counts) - counts
            per_query = np.bincount(self._targeting_query, weights=counts, minlength=c.num_queries).astype(np.int64)
            broad = active[~self.campaign_exact[self.ad_campaign[active]]]
            self._index = dict(by_campaign=by_campaign.astype(np.int32), campaign_start=campaign_bounds[:-1],
                               pair_first=pair_first, posting_start=np.cumsum(per_query) - per_query,
                               posting_count=per_query, broad=broad)
        return self._index

    def _exact_ads(self, index: dict, query_id: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """int[B, W]: the ads at `offset` in each query's exact-match list (the campaigns targeting it, in turn)."""
        if not index["by_campaign"].size or not index["pair_first"].size:  # no exact-match ads, or no keywords
            return np.zeros(offset.shape, np.int32)
        place = index["posting_start"][query_id][:, None] + offset  # in the virtual list of every query's ads
        pair = np.clip(np.searchsorted(index["pair_first"], place, side="right") - 1, 0, index["pair_first"].size - 1)
        slot = index["campaign_start"][self._targeting_campaign[pair]] + place - index["pair_first"][pair]
        return index["by_campaign"][np.clip(slot, 0, index["by_campaign"].size - 1)]

    def queries(self, minute: float, tick_minutes: float) -> QueryBatch:
        """Draw this tick's queries with their context, retrieve their candidates, and compute true relevance."""
        c, rng = self.config, self._traffic_rng
        count = int(rng.poisson(diurnal_rate(self.traffic, minute + tick_minutes / 2) * tick_minutes))
        query_id = self._draw_queries(minute, count, rng)
        topic, intent = self.query_topic[query_id], self.query_intent[query_id]
        device = draw_index(self._device_cdf, rng.random(count)) if self.num_devices > 1 else np.zeros(count, np.int32)
        region = draw_index(self._region_cdf, rng.random(count))
        hour, weekday = int(minute // 60) % 24, int(minute // 1440) % 7
        # each query's user, from a stream of the tick's own (seed, start in ms): no state to carry
        user = draw_index(self._user_cdf, np.random.default_rng([self._seed, 0x05E, 1, round(minute * 60_000)]).random(count))
        ad, valid = self._candidates(query_id, topic, intent, rng)
        ad_topic = self.ad_topic[ad]
        logit = (self._intent_logit[intent] + self.query_bias[query_id] + self.user_bias[user])[:, None] + self.ad_quality[ad]
        logit += np.float32(c.topic_match_effect) * (ad_topic == topic[:, None])
        affinity = np.einsum("bl,bnl->bn", self.query_vector[query_id], self.ad_vector[ad])
        logit += np.float32(c.latent_scale / np.sqrt(c.latent_dim)) * affinity
        logit += self.device_topic[device[:, None], ad_topic] + self.hour_topic[hour, ad_topic]
        if c.novelty_effect or c.fatigue_effect:
            age = minute - self.ad_born_minute[ad]  # minutes
            logit += (c.novelty_effect * np.exp(-age / (60.0 * c.novelty_hours))
                      - c.fatigue_effect * (1.0 - np.exp(-age / (1440.0 * c.fatigue_days)))).astype(np.float32)
        relevance = np.where(valid, 1.0 / (1.0 + np.exp(-logit)), 0.0).astype(np.float32)
        levels = intent - (c.num_intents - 1) / 2.0
        log_lift = (self.format_topic[:, ad_topic] + self.format_device[:, device][:, :, None]
                    + self.format_intent[:, None, None] * levels[None, :, None])  # [T, B, N]
        cap = (1.0 - 1e-6) / np.maximum(relevance, 1e-6)[:, :, None]  # relevance × lift < 1 after rounding too
        lift = np.minimum(np.exp(np.moveaxis(log_lift, 0, -1)), cap)
        columns = dict(query_topic=topic[:, None], query_intent=intent[:, None], ad_id=ad,
                       advertiser=self.ad_advertiser[ad], ad_topic=ad_topic, query_id=query_id[:, None],
                       campaign=self.ad_campaign[ad], device=device[:, None], region=region[:, None], hour=hour,
                       weekday=weekday, user=user[:, None])
        features = np.empty((*ad.shape, len(self.feature_fields)), np.int32)
        for i, name in enumerate(self.feature_fields):
            features[..., i] = columns[name]
        bid = np.where(valid, self.ad_bid[ad], np.float32(0.0))
        reserve = np.where(valid, self.advertiser_reserve[self.ad_advertiser[ad]], np.float32(0.0))
        click_noise = self._click_rng.random(ad.shape, dtype=np.float32)
        return QueryBatch(topic, intent, ad, valid, features, relevance, bid, reserve, click_noise, device,
                          lift.astype(np.float32), self._cascade_noise(count))

    def trends(self, minute: float) -> np.ndarray:
        """int[n]: the topics bursting at `minute` (each day's bursts drawn from (seed, day): Poisson count, uniform
        starts, topics by popularity)."""
        c = self.config
        if not c.trend_bursts_per_day:
            return np.zeros(0, np.int64)
        day, topics = int(minute // 1440), []
        for earlier in range(day - int(np.ceil(c.trend_hours / 24.0)), day + 1):
            if earlier < 0:
                continue
            rng = np.random.default_rng([self._seed, 0x7E, earlier])
            count = rng.poisson(c.trend_bursts_per_day)
            start = earlier * 1440.0 + rng.uniform(0.0, 1440.0, count)
            topic = draw_index(self._topic_cdf, rng.random(count))
            topics.extend(topic[(start <= minute) & (minute < start + 60.0 * c.trend_hours)].tolist())
        return np.unique(np.asarray(topics, np.int64))

    def _draw_queries(self, minute: float, count: int, rng: np.random.Generator) -> np.ndarray:
        """int32[count] query ids by popularity, a bursting topic's queries trend_multiplier times as likely."""
        query_id = draw_index(self._query_cdf, rng.random(count))
        bursting = self.trends(minute)
        if bursting.size:
            extra = (self.config.trend_multiplier - 1.0) * self._topic_mass[bursting]  # each burst's added share
            component = np.searchsorted(np.cumsum(np.concatenate([[1.0], extra])) / (1.0 + extra.sum()),
                                        rng.random(count), side="right")
            from_burst = component > 0
            topic = bursting[np.minimum(component[from_burst], bursting.size) - 1]
            position = np.searchsorted(self._topic_keyed, topic + rng.random(topic.size) * (1 - 1e-12))
            query_id[from_burst] = self._topic_queries[np.minimum(position, self._topic_queries.size - 1)]
        return query_id

    def _candidates(self, query_id: np.ndarray, topic: np.ndarray, intent: np.ndarray,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """int32[B, N] candidates (0 where none) and bool[B, N] valid: exact-match ads first, then broad-match ads
        of the query's topic, each retrieved with the query's broad-match chance, at most N in all."""
        c, index = self.config, self._retrieval_index()
        width = c.candidates_per_query
        exact_count = np.minimum(index["posting_count"][query_id], width)
        exact = self._exact_ads(index, query_id, _windows(index["posting_count"][query_id], width, rng))
        broad = index["broad"]
        shuffled = broad[rng.permutation(broad.size)]  # a fresh order within each topic every tick
        order = shuffled[np.argsort(self.ad_topic[shuffled].astype(np.int16), kind="stable")]  # radix sort
        per_topic = np.bincount(self.ad_topic[order], minlength=c.num_topics)
        first = np.concatenate([[0], np.cumsum(per_topic)[:-1]])
        chance = c.broad_match_rate * (intent + 1) / c.num_intents
        broad_count = np.minimum(rng.binomial(per_topic[topic], chance), width - exact_count)
        offset = _windows(per_topic[topic], width, rng)
        broad_ads = order[np.minimum(first[topic][:, None] + offset, max(order.size - 1, 0))] if order.size \
            else np.zeros((query_id.size, width), np.int64)
        step = np.arange(width)[None, :]
        from_broad = np.take_along_axis(broad_ads, np.clip(step - exact_count[:, None], 0, width - 1), axis=1)
        candidates = np.where(step < exact_count[:, None], exact, from_broad)
        valid = step < (exact_count + broad_count)[:, None]
        return np.where(valid, candidates, 0).astype(np.int32), valid

    def feature_spec(self, model: ModelConfig) -> FeatureSpec:
        """The teaching world's five columns, then query id and campaign (hashed), device, region, hour, weekday and user
        (hashed); crosses: ad × query topic, ad × query id (memorisation, hashed), ad × device, ad topic × hour."""
        c = self.config
        teaching = super().feature_spec(model)
        def ids(name: str, vocabulary: int) -> SparseField:  # hashed only where there are more ids than buckets
            return SparseField(name, vocabulary, model.id_buckets if vocabulary > model.id_buckets else 0)

        fields = (*teaching.fields, ids("query_id", c.num_queries), ids("campaign", c.num_advertisers * c.campaigns_per_advertiser),
                  SparseField("device", self.num_devices), SparseField("region", c.num_regions),
                  SparseField("hour", 24), SparseField("weekday", 7), ids("user", c.num_users))
        crosses = (*teaching.crosses, ("ad_id", "query_id", model.cross_buckets), ("ad_id", "device", model.cross_buckets),
                   ("ad_topic", "hour", model.cross_buckets))
        return FeatureSpec(fields, crosses)
