"""The realistic world (issue #17) on small worlds built for each mechanism: seeding, retrieval by targeting,
relevance with interactions, long-tailed ids, its features in the model, its statistics command, and the teaching
world's feature ids unchanged by the general feature spec."""

from __future__ import annotations

import dataclasses
import json

import jax.numpy as jnp
import numpy as np
import pytest

import simulator
from models import ModelConfig
from models.ctr import FeatureSpec, _hash, embedding_ids
from simulator.cli import main
from simulator.config import ConfigError
from simulator.loop import state as run_state
from simulator.world.kinds import make_world
from simulator.world.ground_truth import true_ctr
from simulator.world.realistic import RealisticWorld

SMALL = ["world.kind=realistic", "world.num_queries=3000", "world.num_topics=6", "world.num_advertisers=30",
         "world.initial_ads=240", "world.candidates_per_query=12", "traffic.queries_per_minute=200",
         "run.duration_hours=0.5"]


def small(*overrides: str) -> simulator.Scenario:
    return simulator.load("scenarios/smoke.toml", overrides=[*SMALL, *overrides])


def test_same_seed_same_world_and_state_round_trip():
    a, b = make_world(small()), make_world(small())
    assert isinstance(a, RealisticWorld)
    first, second = a.queries(0.0, 1.0), b.queries(0.0, 1.0)
    assert np.array_equal(first.features, second.features) and np.array_equal(first.relevance, second.relevance)
    a.churn(1.0, 60.0)  # ads arrive and leave: the retrieval index is rebuilt
    saved = a.state()
    after = a.queries(61.0, 1.0)
    b.restore(saved)
    again = b.queries(61.0, 1.0)
    assert run_state.equal(after, again)
    assert not np.array_equal(make_world(small(), seed=1).queries(0.0, 1.0).features[:5], first.features[:5])


def test_retrieval_follows_targeting_and_varies_per_query():
    world = make_world(small())
    batch = world.queries(600.0, 10.0)
    spec = world.feature_spec(ModelConfig())
    query_id = batch.features[:, 0, spec.index("query_id")]
    keywords = set(zip(world.keyword_campaign.tolist(), world.keyword_query.tolist()))
    counts = batch.valid.sum(axis=1)
    assert counts.max() <= world.config.candidates_per_query
    assert (counts == 0).any() and len(np.unique(counts)) > 3  # none for some queries, a varying number for others
    for q in range(batch.size):
        ads = batch.candidates[q, batch.valid[q]]
        assert len(set(ads.tolist())) == len(ads)  # distinct
        assert world.ad_active[ads].all()
        campaign = world.ad_campaign[ads]
        exact = world.campaign_exact[campaign]
        assert not np.any(np.diff(exact.astype(int)) > 0)  # exact-match ads first, then broad ones
        assert all((c, query_id[q]) in keywords for c in campaign[exact])
        assert np.all(world.ad_topic[ads[~exact]] == batch.topic[q])
    # broad matches rise with intent: the highest intent retrieves more than the lowest, on average
    broad = batch.valid & ~world.campaign_exact[world.ad_campaign[batch.candidates]]
    low, high = batch.intent == 0, batch.intent == world.config.num_intents - 1
    assert broad[high].sum(1).mean() > 1.5 * broad[low].sum(1).mean()


def test_relevance_is_the_documented_logit_with_interactions():
    world = make_world(small("world.novelty_effect=0.8", "world.novelty_hours=12", "world.fatigue_effect=0.5",
                             "world.fatigue_days=3", "world.ad_arrivals_per_hour=600"))
    world.churn(12.5 * 60, 30.0)  # new ads arrive: ages from half an hour to the initial ads' weeks
    batch = world.queries(13 * 60.0, 1.0)
    spec = world.feature_spec(ModelConfig())
    q, n = np.nonzero(batch.valid)
    column = {name: batch.features[q, n, spec.index(name)] for name in world.feature_fields}
    qid, ad, device, hour = column["query_id"], column["ad_id"], column["device"], column["hour"]
    c = world.config
    levels = column["query_intent"] - (c.num_intents - 1) / 2
    logit = (c.relevance_base + c.intent_effect * levels + world.query_bias[qid] + world.user_bias[column["user"]]
             + world.ad_quality[ad]
             + c.latent_scale / np.sqrt(c.latent_dim) * np.sum(world.query_vector[qid] * world.ad_vector[ad], axis=1)
             + c.topic_match_effect * (world.ad_topic[ad] == column["query_topic"])
             + world.device_topic[device, world.ad_topic[ad]] + world.hour_topic[hour, world.ad_topic[ad]])
    age = 13 * 60.0 - world.ad_born_minute[ad]
    assert age.min() < 60 and age.max() > 3 * 1440  # new and old ads among the candidates
    logit += 0.8 * np.exp(-age / (12 * 60)) - 0.5 * (1 - np.exp(-age / (3 * 1440)))
    assert np.all(hour == 13)
    np.testing.assert_allclose(batch.relevance[q, n], 1 / (1 + np.exp(-logit)), rtol=2e-5)
    # the query·ad term is an interaction: the logit matrix over queries × ads is far from rank one in (q, a) sums
    flat = make_world(small("world.latent_scale=0", "world.device_topic_sd=0", "world.hour_topic_sd=0"))
    assert np.var(np.sum(world.query_vector[qid] * world.ad_vector[ad], axis=1)) > 0.3 * c.latent_dim
    b = flat.queries(13 * 60.0, 1.0)
    rows = np.flatnonzero(b.valid.sum(1) >= 2)[:50]
    for r in rows:  # without the interactions, two ads differ by the same logit for every query
        ads = b.candidates[r, b.valid[r]][:2]
        gap = np.log(b.relevance[r, :2] / (1 - b.relevance[r, :2]))
        match = c.topic_match_effect * (flat.ad_topic[ads] == b.topic[r])
        expected = flat.ad_quality[ads[0]] + match[0] - flat.ad_quality[ads[1]] - match[1]
        assert gap[0] - gap[1] == pytest.approx(expected, abs=2e-4)


def test_query_ids_have_a_long_tail_and_the_exponent_moves_it():
    def rare_share(exponent: float) -> float:
        world = make_world(small(f"world.query_zipf_exponent={exponent}", "world.num_queries=20000"))
        ids = np.concatenate([world.queries(m, 1.0).features[:, 0, 5] for m in range(0, 600, 10)])
        _, counts = np.unique(ids, return_counts=True)
        return float((counts < 10).mean())

    zipf, uniform = rare_share(1.0), rare_share(0.0)
    assert zipf > 0.8 and uniform > zipf  # a flat popularity leaves every id rare at this traffic
    head = make_world(small("world.num_queries=20000"))
    top = np.sort(head.query_popularity)[::-1]
    assert top[:20].sum() > 0.15  # the head: 0.1 % of the ids carry > 15 % of the traffic


def test_the_model_sees_every_column_and_the_loop_runs():
    scenario = small("run.duration_hours=0.2")
    world = make_world(scenario)
    spec = world.feature_spec(scenario.model)
    assert [f.name for f in spec.fields] == list(world.feature_fields)
    assert spec.index("advertiser") == 3  # the bias slices read the advertiser there
    output = simulator.run(scenario)
    s = output.summary()
    assert s["impressions"] > 0 and s["trained_examples"] == s["impressions"] and np.isfinite(s["pv_logloss"])


def test_a_cross_can_be_left_out_of_the_model_and_a_wrong_name_is_refused():
    from simulator.loop.builders import build_model

    scenario = small()
    world = make_world(scenario)
    full = build_model(scenario, world)
    assert full.spec.cross_names == ("ad_id*query_topic", "ad_id*query_id", "ad_id*device", "ad_topic*hour")
    ablated = build_model(simulator.config.replace(scenario, model__omit_crosses=["ad_id*query_id"]), world)
    assert ablated.spec.cross_names == ("ad_id*query_topic", "ad_id*device", "ad_topic*hour")
    removed = dict(zip(full.spec.cross_names, full.spec.field_sizes[len(full.spec.fields):]))["ad_id*query_id"]
    assert sum(full.spec.field_sizes) - sum(ablated.spec.field_sizes) == removed  # its table rows are gone
    assert ablated.spec.fields == full.spec.fields  # the columns the world gives stay
    run = simulator.run(small("run.duration_hours=0.1", "model.omit_crosses=['ad_id*query_id']", "train.sparse_embeddings=true"))
    assert run.summary()["trained_examples"] > 0 and np.isfinite(run.summary()["pv_logloss"])
    unchecked = dataclasses.replace(scenario, model=dataclasses.replace(scenario.model, omit_crosses=["query_id*ad_id"]))
    with pytest.raises(ConfigError, match=r"model\.omit_crosses: no cross 'query_id\*ad_id' in this world; its crosses: ad_id\*query_topic"):
        build_model(unchecked, world)  # a scenario built in Python, past the loader's check
    # refused at load, before any world is built (a study's arms are checked this way before anything runs)
    with pytest.raises(ConfigError, match=r"model\.omit_crosses: no cross 'ad_id\*query_id' in the teaching world; its crosses: ad_id\*query_topic$"):
        simulator.load("scenarios/smoke.toml", overrides=["model.omit_crosses=['ad_id*query_id']"])
    with pytest.raises(ConfigError, match=r"model\.omit_crosses: the names must be distinct"):
        small("model.omit_crosses=['ad_id*device', 'ad_id*device']")


def test_contradictory_targeting_is_refused_with_the_field():
    with pytest.raises(ConfigError, match="broad_match_rate"):
        small("world.broad_match_rate=0", "world.exact_match_share=0")
    with pytest.raises(ConfigError, match="world.kind"):
        small("world.kind=cosmic")


def test_the_teaching_feature_ids_are_unchanged():
    """The general spec reproduces the teaching world's former embedding rows exactly (same results as before)."""
    spec = FeatureSpec.teaching(5, 3, 7, 64, 128)
    rng = np.random.default_rng(0)
    raw = np.stack([rng.integers(0, 5, 200), rng.integers(0, 3, 200), rng.integers(0, 5000, 200),
                    rng.integers(0, 7, 200), rng.integers(0, 5, 200)], axis=1).astype(np.int32)
    topic, intent, ad, advertiser, ad_topic = (jnp.asarray(raw[:, i]) for i in range(5))
    former = jnp.stack([topic, intent, _hash(ad, 64), advertiser, ad_topic, _hash(ad * 5 + topic, 128)], axis=-1)
    former = former + jnp.asarray(np.cumsum([0, 5, 3, 64, 7, 5])[None, :])
    assert np.array_equal(np.asarray(embedding_ids(spec, jnp.asarray(raw))), np.asarray(former))


def test_world_command_reports_statistics_beside_targets(tmp_path, capsys):
    out = tmp_path / "w"
    assert main(["world", "scenarios/smoke.toml", *sum((["--set", o] for o in SMALL), []), "--hours", "0.5",
                 "--quiet", "--out", str(out)]) == 0
    report = json.loads((out / "world.json").read_text())
    stats = report["statistics"]
    assert {row["statistic"] for row in report["targets"]} >= {"ctr", "ids_under_10_pooled", "top_ads_1"}
    assert 0 < stats["ctr"] < 1 and abs(sum(stats["ads_per_query_shares"]) - 1) < 1e-9
    assert stats["id_tails"]["query_id"]["under_10"] > 0.5
    assert "ctr " in capsys.readouterr().out
    assert main(["world", "scenarios/smoke.toml", "--hours", "0", "--quiet"]) == 2
    # under the cascade: what the auction's separable slates lose against the best slates (≥ 0 up to the shortlist)
    assert main(["world", "scenarios/smoke.toml", *sum((["--set", o] for o in SMALL), []), "--hours", "0.5", "--quiet",
                 "--set", "world.click_model=cascade", "--set", "run.probe_every=4", "--out", str(out)]) == 0
    loss = json.loads((out / "world.json").read_text())["statistics"]["ads"]["separable_auction_loss"]
    assert -0.01 < loss < 0.5


def test_world_statistics_are_the_same_with_the_records_on_disk():
    """The world run's records (impressions, probes, the shown ads' ids) moved to disk almost every tick give the
    same statistics, the cascade's separable-auction loss included, as records held in memory."""
    from simulator.measure.world_statistics import statistics, world_run

    reports = []
    for megabytes in (0.0, 0.01):
        scenario = small("world.click_model=cascade", "run.probe_every=4", f"run.records_memory_mb={megabytes}")
        output, ads = world_run(scenario, hours=0.15)
        moved = output.training_logs.rows.stored_parts, output.log.stored_parts, output.probes.stored_parts
        assert (min(moved) > 5) if megabytes else moved == (0, 0, 0)
        reports.append(json.dumps(statistics(output, ads), sort_keys=True))
    assert reports[0] == reports[1]


def test_format_effects_depend_on_the_ad_and_the_context():
    """Each format's lift over the first is exp(topic + device + intent-slope effects), so the true CTR is not a
    query-ad factor times a format-position factor: the image/text ratio differs between candidates."""
    world = make_world(small("world.devices=[\"desktop\", \"mobile\"]", "world.device_shares=[0.4, 0.6]",
                             "world.position_effects=[[1.0, 0.7, 0.5, 0.3], [1.0, 0.5]]"))
    batch = world.queries(0.0, 5.0)
    q, n = np.nonzero(batch.valid)
    topic, device = world.ad_topic[batch.candidates[q, n]], batch.device[q]
    levels = batch.intent[q] - (world.config.num_intents - 1) / 2
    expected = np.exp(world.format_topic[:, topic] + world.format_device[:, device]
                      + world.format_intent[:, None] * levels[None, :]).T
    expected = np.minimum(expected, 1 / batch.relevance[q, n][:, None])
    np.testing.assert_allclose(batch.lift[q, n], expected, rtol=1e-5)
    assert np.all(batch.lift[q, n, 0] == 1)  # the first treatment is the reference
    ratio = np.log(batch.lift[q, n, 2] / batch.lift[q, n, 0])
    assert ratio.std() > 0.2  # formats act differently on different ads and contexts
    truth = true_ctr(batch.relevance, batch.lift, world.examination)
    assert np.all((truth >= 0) & (truth <= 1))


def test_weekly_cycle_quality_drift_and_trend_bursts():
    from simulator.world.ground_truth import diurnal_rate

    scenario = small("traffic.weekly_amplitude=0.2", "traffic.peak_weekday=3", "traffic.diurnal_amplitude=0",
                     "world.quality_drift_sd=0.4", "world.trend_bursts_per_day=6", "world.trend_multiplier=8",
                     "world.trend_hours=2")
    peak, trough = diurnal_rate(scenario.traffic, 3 * 1440.0), diurnal_rate(scenario.traffic, 6.5 * 1440.0)
    assert peak / trough == pytest.approx(1.2 / 0.8)
    assert diurnal_rate(small("traffic.diurnal_amplitude=0").traffic, 3 * 1440.0) == 200.0  # no weekly cycle: flat
    world = make_world(scenario)
    before = world.ad_quality.copy()
    for day in range(4):  # four days of drift, in ticks of an hour
        for hour in range(24):
            world.churn((24 * day + hour) * 60.0, 60.0)
    alive = np.flatnonzero(world.ad_active[:before.size])
    step = world.ad_quality[alive] - before[alive]
    assert step.std() == pytest.approx(0.4 * np.sqrt(4), rel=0.2)  # a random walk of 0.4 per √day
    # bursts: deterministic from the seed, and a bursting topic's share of traffic rises about × 8
    minutes = np.arange(0.0, 3 * 1440.0, 10.0)
    bursting = [make_world(scenario).trends(m) for m in minutes]
    assert all(np.array_equal(a, world.trends(m)) for a, m in zip(bursting, minutes))
    at = next(m for m, topics in zip(minutes, bursting) if topics.size == 1)
    topic = int(world.trends(at)[0])
    base = world._topic_mass[topic]
    queries = np.concatenate([world.queries(at + i * 0.1, 0.1).topic for i in range(10)])
    expected = 8 * base / (1 + 7 * base)
    share = float(np.mean(queries == topic))
    assert share == pytest.approx(expected, abs=4 * np.sqrt(expected * (1 - expected) / queries.size))
    assert share > 3 * base


def test_advertisers_leave_with_their_ads_and_enter_with_new_ones():
    world = make_world(small("world.dormant_advertiser_share=0.3", "world.advertiser_churn_per_day=0.5"))
    start = world.advertiser_active.copy()
    assert 0.5 < start.mean() < 0.9
    assert start[world.ad_advertiser].all()  # the initial ads belong to active advertisers only
    before = world.num_ads
    for hour in range(48):
        world.churn(hour * 60.0, 60.0)
    left, entered = start & ~world.advertiser_active, ~start & world.advertiser_active
    assert left.sum() >= 3 and entered.sum() >= 3
    assert not world.ad_active[np.isin(world.ad_advertiser, np.flatnonzero(~world.advertiser_active))].any()
    newcomers = np.isin(world.ad_advertiser[before:], np.flatnonzero(entered))
    assert newcomers.any() and world.ad_active[before:][newcomers].any()  # entrants advertise with new ads
    saved = world.state()
    assert "advertiser_active" in saved.ads  # checkpoints carry who advertises


def test_the_shipped_default_world_stays_inside_its_bands():
    """The default scenario is the realistic world, and over a simulated day (the id tails are per-day statistics)
    every banded statistic stays inside its documented band (docs/world.md): CTR, the position-2/1 CTR ratio, the
    top-ad mix and both id tails."""
    from simulator.measure.world_statistics import statistics, target_rows, world_run

    scenario = simulator.load("scenarios/default.toml")
    assert scenario.world.kind == "realistic" and scenario.run.duration_hours == 24.0
    output, ads = world_run(scenario)
    rows = {row["statistic"]: row for row in target_rows(statistics(output, ads)) if row["inside"] is not None}
    assert set(rows) == {"ctr", "ctr_position_2_over_1", "top_ads_1", "top_ads_2", "top_ads_3", "top_ads_4",
                         "ids_under_10_pooled", "ids_once_pooled"}
    for name, row in rows.items():
        assert row["inside"], (name, row["world"], row["band"])


def test_the_large_preset_has_production_sized_vocabularies_and_sparse_tables():
    """scenarios/large.toml is what it says (its speed and memory: benchmarks/world_speed.py): ≥ 10⁶ ads and query
    ids, tables of ≥ 10⁶ rows for ads, query ids and each cross, trained sparsely."""
    scenario = simulator.load("scenarios/large.toml")
    w, m = scenario.world, scenario.model
    assert w.kind == "realistic" and w.initial_ads >= 10**6 and w.num_queries >= 10**6
    assert scenario.train.sparse_embeddings
    assert min(m.ad_buckets, m.id_buckets, m.cross_buckets) >= 2**20


def test_exact_match_ads_are_the_ads_of_the_campaigns_targeting_the_query():
    world = make_world(small(), 0)
    index = world._retrieval_index()
    for query in np.flatnonzero(index["posting_count"])[:40]:
        count = int(index["posting_count"][query])
        ads = world._exact_ads(index, np.array([query]), np.arange(count)[None, :])[0]
        campaigns = world.keyword_campaign[world.keyword_query == query]
        expected = np.flatnonzero(world.ad_active & np.isin(world.ad_campaign, campaigns))
        assert sorted(ads.tolist()) == expected.tolist()


def test_users_are_a_long_tailed_feature_and_the_exponent_moves_the_tail():
    def users(*overrides: str) -> np.ndarray:
        world = make_world(small("world.num_users=100000", *overrides), 0)
        batch = world.queries(600.0, 60.0)
        return batch.features[:, 0, world.feature_spec(ModelConfig()).index("user")]

    flat, steep = users(), users("world.user_zipf_exponent=2.0")
    assert np.unique(flat).size > 0.5 * flat.size  # most users search once
    assert np.unique(steep).size < 0.1 * steep.size and np.bincount(steep).max() > 0.3 * steep.size


def test_a_world_whose_targeting_retrieves_nothing_anywhere_is_refused_where_it_is_built(tmp_path, capsys):
    """The one query id is of a topic no advertiser has: no keyword pairs, and broad match (by topic) finds nothing
    either, so no query could show an ad (a reviewer's case). The world is refused as it is built, naming the field,
    by the CLI too; with the query ids of every topic it runs."""
    nowhere = ("world.num_queries=1", "world.num_advertisers=2", "world.initial_ads=20")
    for match in ("world.exact_match_share=1.0", "world.broad_match_rate=1.0"):
        with pytest.raises(ConfigError, match=r"^world\.exact_match_share: no advertiser that advertises has"):
            make_world(small(*nowhere, match), 0)
    # broad match of the query's topic, but only by a dormant advertiser who never enters (no advertiser churn)
    dormant_only = ("world.num_queries=1", "world.num_advertisers=2", "world.dormant_advertiser_share=0.5",
                    "world.exact_match_share=0", "world.broad_match_rate=1", "run.seed=1")
    with pytest.raises(ConfigError, match="no advertiser that advertises"):
        make_world(small(*dormant_only, "world.advertiser_churn_per_day=0"))
    make_world(small(*dormant_only, "world.advertiser_churn_per_day=0.5"))  # it may enter: a world that can work
    assert main(["run", "scenarios/smoke.toml", *sum((["--set", o] for o in (*SMALL, *nowhere)), []), "--quiet",
                 "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("adfloor: world.exact_match_share: no advertiser")
    world = make_world(small("world.num_queries=200", "world.num_advertisers=2", "world.initial_ads=20",
                             "world.broad_match_rate=1.0"), 0)
    assert world.queries(60.0, 1.0).valid.any()


def test_id_tails_count_a_pages_ids_once_per_page_view():
    """A page's ids (the query's, its user's) count once per page view however many ads it shows, an ad's once per
    impression: as in the one-ad-per-row logs the tails are compared with."""
    from simulator.measure.world_statistics import id_tails

    # three page views: 7 with two ads (user 5), 8 with one (user 5), 9 with three (user 6); ads 1, 2, 1, 1, 2, 3
    query = np.array([7, 7, 8, 9, 9, 9])
    features = np.stack([np.array([5, 5, 5, 6, 6, 6]), np.array([1, 2, 1, 1, 2, 3])], axis=1).astype(np.int32)
    tails = id_tails(features, np.zeros(6), query, ("user", "ad_id"), ("user",))
    assert tails["user"]["once"] == 0.5  # user 6: one page view, three impressions
    assert tails["ad_id"]["once"] == 1 / 3  # ad 3 only; ads 1 and 2 shown on several pages
    assert tails["pooled"]["distinct_per_day"] == 5
    per_row = id_tails(features, np.zeros(6), query, ("user", "ad_id"), ())
    assert per_row["user"]["once"] == 0.0  # counted per impression row, no user is seen once
