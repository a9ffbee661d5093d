"""The pure parts of a tick's work: exploration noise, what was shown and clicked, the probes kept, the logs ready for
training, the PV bookkeeping, the divergence check, recent PV loss.

Each is a function of the tick's arrays and the run's counters, with no state of its own, so the loop's state
stays in `Simulation` (and `RunState`) alone.
"""

from __future__ import annotations

import collections

import numpy as np

from auction import AuctionOutcome
from auction.config import AuctionConfig
from models import Examples
from models.config import TrainConfig
from models.metrics import log_loss
from simulator.config import Scenario
from simulator.loop.builders import sampling_rates, training_order, uniform_hash
from simulator.loop.records import PendingLog, ProbeRecord, PvChunk, TrainingDiverged, Unscored
from simulator.world.click_models import CLICK_MODELS, trusted
from simulator.world.config import WorldConfig
from simulator.world.ground_truth import QueryBatch

EXPLORATION_STREAM = 0xE7  # spawn key of the exploration generator (the world's streams use 0xAD)


def exploration_factors(auction: AuctionConfig, seed: int, first_query: int, batch: QueryBatch) -> np.ndarray | None:
    """float32[B, N] pCTR multipliers: exp(σz − σ²/2) for every candidate of an explored query, 1 elsewhere.

    Drawn from a generator keyed by (seed, first query number of the tick): deterministic, no state to
    checkpoint, and independent of the world's streams, so paired replays keep their common random numbers.
    """
    if auction.exploration_rate <= 0:
        return None
    rng = np.random.default_rng([seed, EXPLORATION_STREAM, first_query])
    explored = rng.random(batch.size) < auction.exploration_rate
    sigma = auction.exploration_noise
    noise = np.exp(sigma * rng.standard_normal(batch.candidates.shape) - sigma ** 2 / 2)
    return np.where(explored[:, None], noise, 1.0).astype(np.float32)


def shown_and_clicked(minute: float, batch: QueryBatch, outcome: AuctionOutcome, model_ctr: np.ndarray,
                      context: np.ndarray, examination: np.ndarray, slots: np.ndarray, first_query: int,
                      scenario: Scenario) -> tuple[PendingLog, dict[str, np.ndarray], dict]:
    """What the tick's auctions showed and users clicked (clicks drawn from the true CTR with the batch's
    noise): the logs for training (sampled, importance-weighted), the impression log's columns, the metric row.

    `model_ctr` is the model's own pCTR[B, N, T, K]: not the auction's (perturbed on explored queries and made
    non-increasing along positions), so calibration measures the model. `examination` is over the world's slots
    [T, S], `slots` int32[B, K] the slot of each page position: the model learns the slot as its position.
    """
    query, position = np.nonzero(outcome.ad >= 0)
    candidate = outcome.ad[query, position]
    chosen = outcome.treatment[query, position]
    slot = slots[query, position]
    true_ctr, click = slate_clicks(batch, outcome, examination, slots, scenario.world)
    pctr = model_ctr[query, candidate, chosen, position]
    click = click.astype(np.float32)
    price = outcome.price_per_click[query, position]
    examples = Examples(batch.features[query, candidate], chosen.astype(np.int32), slot.astype(np.int32), click,
                        query=first_query + query)
    keep_rate = sampling_rates(scenario.data, click, position, pctr)
    kept = keep_rate >= uniform_hash(first_query + query, position)  # same data for every model: no RNG state
    examples = Examples(*(column[kept] for column in examples._replace(weight=1.0 / keep_rate)))
    entry = PendingLog(minute + scenario.train.training_delay_minutes, examples, true_ctr[kept])
    impressions = dict(minute=np.full(len(click), minute, np.float32), query=first_query + query,
                       context=context[query], device=batch.device[query].astype(np.int8),
                       position=position.astype(np.int8), treatment=chosen.astype(np.int8),
                       ad_id=batch.candidates[query, candidate], click=click.astype(np.int8), true_ctr=true_ctr,
                       pctr=pctr, price_per_click=price)
    row = {
        "sim_minute": minute,
        "queries": batch.size,
        "impressions": int(len(click)),
        "clicks": int(click.sum()),
        "revenue": float(np.sum(click * price)),
        "expected_revenue": float(np.sum(price * true_ctr)),
        "welfare": float(np.sum(batch.bid[query, candidate] * true_ctr)),
        "mean_pctr_shown": float(pctr.mean()) if len(click) else float("nan"),
        "mean_true_ctr_shown": float(true_ctr.mean()) if len(click) else float("nan"),
    }
    return entry, impressions, row


def slate_clicks(batch: QueryBatch, outcome: AuctionOutcome, examination: np.ndarray, slots: np.ndarray,
                 world: WorldConfig) -> tuple[np.ndarray, np.ndarray]:
    """The true CTR given the whole slate, and the click, of every shown ad (in (query, position) order), from the
    world's click model on the slates the auctions chose."""
    shown = outcome.ad >= 0
    rows = np.arange(batch.size)[:, None]
    ad, treatment = np.where(shown, outcome.ad, 0), np.where(shown, outcome.treatment, 0)
    base = batch.relevance[rows, ad] * batch.lift[rows, ad, treatment]
    looked, top = examination[treatment, slots], examination[treatment, slots[:, :1]]
    separable, attractive = base * looked, base * top
    if world.trust:
        separable, attractive = trusted(attractive, looked / top, world.trust_false_click, world.trust_true_click_drop)
    separable = np.where(shown, separable, np.float32(0))
    attractive = np.where(shown, attractive, np.float32(0))
    truth, click = CLICK_MODELS[world.click_model].clicks(separable, attractive, batch.click_noise[rows, ad],
                                                          batch.cascade_noise, world.cascade_continue,
                                                          world.cascade_satisfaction)
    return truth[shown], click[shown]


def probe_record(every: int, first_query: int, minute: float, batch: QueryBatch, model_ctr: np.ndarray,
                 context: np.ndarray) -> ProbeRecord | None:
    """Every `every`-th query's pCTR of every candidate, treatment and position (None when none is due).

    `model_ctr` is the tick's pCTR[B, N, T, K] (at the query's page positions). Paired runs see the same queries
    and candidates, so these are predictions on the same examples.
    """
    if not every:
        return None
    number = first_query + np.arange(batch.size)
    chosen = np.flatnonzero(number % every == 0)
    if chosen.size == 0:
        return None
    return ProbeRecord(np.full(chosen.size, minute, np.float32), number[chosen], model_ctr[chosen], batch.valid[chosen],
                       batch.candidates[chosen], batch.relevance[chosen], context[chosen], batch.device[chosen],
                       batch.lift[chosen])


def check_divergence(train: TrainConfig, minute: float, predictions: np.ndarray, trained: int, rows: list[dict],
                     oracle: bool) -> None:
    """Raise TrainingDiverged on non-finite predictions, or a PV log loss far above the oracle's."""
    where = f"at simulated hour {minute / 60:.2f}"
    if not np.all(np.isfinite(predictions)):
        raise TrainingDiverged(f"training diverged {where}: non-finite predictions")
    warmup = max(train.divergence_warmup_examples, 20 * train.batch_size)  # large batches take fewer, later steps
    if oracle or not train.divergence_factor or trained < warmup:
        return
    pv_sum, oracle_sum, count = recent_loss_sums(rows, 2000)
    if count and pv_sum > train.divergence_factor * oracle_sum:
        raise TrainingDiverged(f"training diverged {where}: PV log loss {pv_sum / count:.3f} > "
                               f"{train.divergence_factor:g} × the oracle's {oracle_sum / count:.3f} over the last "
                               f"{int(count):,} examples (train.divergence_factor)")


def recent_loss_sums(rows: list[dict], examples: float) -> tuple[float, float, float]:
    """The PV and oracle weighted log-loss sums, and the weight, of about the last `examples` trained examples (whole
    ticks' rows, newest first, until their weight reaches it)."""
    pv_sum = oracle_sum = count = 0.0
    for row in reversed(rows):
        pv_sum, oracle_sum = pv_sum + row.get("pv_loss_sum", 0.0), oracle_sum + row.get("oracle_loss_sum", 0.0)
        count += row.get("trained_weight", 0.0)
        if count >= examples:
            break
    return pv_sum, oracle_sum, count


def recent_pv_logloss(rows: list[dict], examples: float = 20_000) -> float:
    """PV log loss over about the last `examples` trained examples (for progress displays)."""
    pv_sum, _, count = recent_loss_sums(rows, examples)
    return pv_sum / count if count else float("nan")


def pop_ready(pending: collections.deque[PendingLog], minute: float, flush: bool,
              shuffle_seed: int) -> tuple[Examples | None, Unscored | None]:
    """Take from `pending` every log whose training delay has passed (all of them with `flush`), in training order
    (`train.shuffle_seed` > 0 shuffles whole queries), and what progressive validation keeps of them."""
    ready, truths = [], []
    while pending and (flush or pending[0].available_minute <= minute):
        _, examples, true_ctr = pending.popleft()
        ready.append(examples)
        truths.append(true_ctr)
    if not ready:
        return None, None
    examples, true_ctr = Examples.concat(ready), np.concatenate(truths)
    if shuffle_seed:
        order = training_order(examples.query, shuffle_seed)
        examples, true_ctr = examples.take(order), true_ctr[order]
    return examples, Unscored(examples.label, examples.weight, true_ctr, examples.query)


def split_scored(unscored: list[Unscored], scored: int) -> tuple[Unscored, list[Unscored]]:
    """The first `scored` examples waiting for their PV predictions, and the rest (still waiting)."""
    columns = [np.concatenate(column) for column in zip(*unscored)]
    rest = [Unscored(*(c[scored:] for c in columns))] if scored < len(columns[0]) else []
    return Unscored(*(c[:scored] for c in columns)), rest


def add_pv(row: dict, chunk: PvChunk) -> None:
    """Add a PV chunk's examples, weight and weighted log-loss sums (the model's and the oracle's) to a tick's row."""
    total_weight = float(chunk.weight.sum())
    row["trained_examples"] = row.get("trained_examples", 0) + len(chunk.label)
    row["trained_weight"] = row.get("trained_weight", 0.0) + total_weight
    row["pv_loss_sum"] = row.get("pv_loss_sum", 0.0) + total_weight * log_loss(chunk.prediction, chunk.label, chunk.weight)
    row["oracle_loss_sum"] = row.get("oracle_loss_sum", 0.0) + total_weight * log_loss(chunk.truth, chunk.label,
                                                                                        chunk.weight)
