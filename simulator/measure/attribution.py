"""Credit attribution and the feedback-loop study: what a run's probes say about cells the auction rarely shows."""

from __future__ import annotations

import numpy as np

from simulator.world.click_models import trusted_ctr

MISESTIMATED = np.log(1.5)  # the feedback-loop study calls an ad under/overestimated beyond a factor 1.5


def _shown_counts(frame, contexts: np.ndarray, ads: np.ndarray, t: int, k: int) -> np.ndarray:
    """How often each (query context, ad, treatment, position) of `contexts` [P] × `ads` [P, N] was shown over
    the run: int[P, N, T, K]."""
    ad_range = int(ads.max(initial=0)) + 1

    def cell_key(context, ad):
        return ((context.astype(np.int64) * ad_range + ad.astype(np.int64)) * t) * k

    ad_ids = frame["ad_id"].to_numpy().astype(np.int64)
    known = ad_ids < ad_range
    key = (cell_key(frame["context"].to_numpy()[known], ad_ids[known])
           + frame["treatment"].to_numpy()[known] * k + frame["position"].to_numpy()[known])
    keys, counts = np.unique(key, return_counts=True)
    cells = (cell_key(contexts[:, None], ads)[..., None, None] + np.arange(t)[:, None] * k + np.arange(k))
    if keys.size == 0:
        return np.zeros(cells.shape, np.int64)
    found = np.minimum(np.searchsorted(keys, cells), len(keys) - 1)
    return np.where(keys[found] == cells, counts[found], 0)


def served_treatment(pctr: np.ndarray) -> np.ndarray:
    """int[P, N]: the treatment the auction would give each probed candidate at the top — its highest-pCTR
    treatment there (without a height budget VCG takes each ad's best treatment: bid and reserve are per ad)."""
    return np.argmax(pctr[:, :, :, 0], axis=2)


def probe_truth(probes: dict, examination: np.ndarray, world) -> np.ndarray:
    """The probed candidates' true CTR[P, N, T, K] on the page of `examination` [T, K]: relevance × lift × examination,
    with the world's trust term when it is on (exact under the position-based click model; the cascade's slate
    effect is in no per-candidate truth)."""
    truth = probes["relevance"][:, :, None, None] * probes["lift"][:, :, :, None] * examination[None, None]
    return trusted_ctr(truth, world.trust_false_click, world.trust_true_click_drop) if world.trust else truth


def _attribution(probes: dict, examination: np.ndarray, frame, half: float, world) -> dict:
    """Credit attribution and accuracy on rarely shown (query context, ad, treatment, position) cells, from the
    probes of the second half: learned vs true position effect in the treatment the auction would serve each
    candidate, treatment effects against the treatment served most, learned vs true ad quality there. With the
    trust term the true effects depend on the ad, and come from each candidate's own truth."""
    from scipy.stats import spearmanr

    late = probes["minute"] >= half  # the second half of simulated time
    pctr, valid = probes["pctr"][late].astype(np.float64), probes["valid"][late]
    lift = probes["lift"][late]  # [P, N, T]
    truth = probe_truth({name: column[late] for name, column in probes.items()}, examination, world)
    ads = probes["candidates"][late]
    t, k = examination.shape
    shown_count = _shown_counts(frame, probes["context"][late], ads, t, k)
    error = np.abs(np.log(np.maximum(pctr, 1e-9) / np.maximum(truth, 1e-9)))
    cells = np.broadcast_to(valid[:, :, None, None], error.shape)
    result = {}
    for name, mask in (("never", shown_count == 0), ("rarely", (shown_count > 0) & (shown_count < 10)),
                       ("often", shown_count >= 10)):
        chosen = cells & mask
        result[f"error_{name}_shown"] = float(error[chosen].mean()) if chosen.any() else float("nan")
    log_pctr = np.log(np.maximum(pctr, 1e-9))
    served = served_treatment(pctr)  # [P, N]
    at_served = np.take_along_axis(log_pctr, served[:, :, None, None], axis=2)[:, :, 0, :]  # [P, N, K]
    true_at_served = np.log(np.take_along_axis(truth, served[:, :, None, None], axis=2)[:, :, 0, :] if world.trust
                            else examination[served])  # [P, N, K]
    learned_position = at_served[:, :, 1:] - at_served[:, :, :1]  # vs the top, in the served treatment
    true_position = true_at_served[:, :, 1:] - true_at_served[:, :, :1]
    result["position_effect_error"] = float(np.abs(learned_position - true_position)[valid].mean())
    result["learned_position_effect"] = np.exp(learned_position[valid].mean(axis=0)).tolist()
    result["true_position_effect"] = np.exp(true_position[valid].mean(axis=0)).tolist()
    counts = np.bincount(frame["treatment"].to_numpy().astype(np.int64), minlength=t)
    reference = int(np.argmax(counts))  # the treatment the auction served most
    others = [f for f in range(t) if f != reference]
    learned_treatment = log_pctr[:, :, others, 0] - log_pctr[:, :, reference:reference + 1, 0]  # at the top
    if world.trust:
        true_treatment = np.log(truth[:, :, others, 0] / truth[:, :, reference:reference + 1, 0])
    else:
        true_treatment = np.log((lift[:, :, others] * examination[others, 0])
                                / (lift[:, :, reference:reference + 1] * examination[reference, 0]))  # [P, N, others]
    result["treatment_effect_error"] = float(np.abs(learned_treatment - true_treatment)[valid].mean())
    result["learned_treatment_effect"] = np.exp(learned_treatment[valid].mean(axis=0)).tolist()
    # averaged in float64: with equal lifts (the teaching world) every value is the same and the mean is exact
    result["true_treatment_effect"] = np.exp(true_treatment[valid].astype(np.float64).mean(axis=0)
                                             .astype(true_treatment.dtype)).tolist()
    result["treatment_effect_reference"] = reference
    result["treatment_effect_others"] = others
    result["served_share_by_treatment"] = (counts / max(counts.sum(), 1)).tolist()
    # ad quality: each ad's mean log CTR at (served treatment, top) over its probe appearances, learned vs true
    true_top = np.log(np.maximum(np.take_along_axis(truth[:, :, :, 0], served[:, :, None], axis=2)[:, :, 0], 1e-9))
    ad, learned, true = ads[valid], at_served[:, :, 0][valid], true_top[valid]
    _, index, appearances = np.unique(ad, return_inverse=True, return_counts=True)
    tracked = appearances >= 3
    mean_learned = np.bincount(index, learned) / appearances
    mean_true = np.bincount(index, true) / appearances
    result["quality_rank_correlation"] = (float(spearmanr(mean_learned[tracked], mean_true[tracked])[0])
                                          if tracked.sum() > 2 else float("nan"))
    return result


def feedback_loop(probes: dict, examination: np.ndarray, frame, scenario) -> dict:
    """The feedback-loop failure: does an ad underestimated early stay underestimated?

    Per ad, the mean log(pCTR / true CTR) at the top in the treatment the auction would serve it (its
    highest-pCTR treatment there) over its probe appearances in an early window (5–25 % of the run) and the
    last quarter. Underestimated = below −log 1.5. The hypothesis it tests: an underestimated ad is shown
    less (show rate: its impressions between the windows per candidate appearance), so its error is
    corrected slowly, while an overestimated one is shown and its clicks correct it.
    """
    duration = scenario.run.duration_hours * 60.0
    minute = probes["minute"]
    valid = probes["valid"]
    ads = probes["candidates"][valid]
    served = served_treatment(probes["pctr"])[:, :, None]
    top_pctr = np.take_along_axis(probes["pctr"][:, :, :, 0], served, axis=2)[:, :, 0].astype(np.float64)
    if scenario.world.trust:
        top_truth = np.take_along_axis(probe_truth(probes, examination, scenario.world)[:, :, :, 0], served, axis=2)[:, :, 0]
    else:
        top_lift = np.take_along_axis(probes["lift"], served, axis=2)[:, :, 0]
        top_truth = probes["relevance"] * top_lift * examination[served[:, :, 0], 0]
    error = (np.log(np.maximum(top_pctr, 1e-9)) - np.log(np.maximum(top_truth, 1e-9)))[valid]
    when = np.broadcast_to(minute[:, None], valid.shape)[valid]
    ids = np.unique(ads)
    index = np.searchsorted(ids, ads)

    def window_mean(lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
        inside = (when >= lo * duration) & (when < hi * duration)
        count = np.bincount(index[inside], minlength=ids.size)
        total = np.bincount(index[inside], error[inside], minlength=ids.size)
        return total / np.maximum(count, 1), count

    early, early_count = window_mean(0.05, 0.25)
    late, late_count = window_mean(0.75, 1.0 + 1e-9)
    tracked = (early_count >= 3) & (late_count >= 3)
    under, over = tracked & (early < -MISESTIMATED), tracked & (early > MISESTIMATED)
    # show rate between the windows: impressions / candidate appearances (probes sample 1 query in probe_every)
    between = (when >= 0.25 * duration) & (when < 0.75 * duration)
    appearances = np.bincount(index[between], minlength=ids.size) * scenario.run.probe_every
    middle = frame[(frame["minute"] >= 0.25 * duration) & (frame["minute"] < 0.75 * duration)]["ad_id"].to_numpy()
    impressions = np.bincount(np.searchsorted(ids, middle[np.isin(middle, ids)]), minlength=ids.size)

    def share(mask: np.ndarray, condition: np.ndarray) -> float:
        return float(condition[mask].mean()) if mask.any() else float("nan")

    def show_rate(mask: np.ndarray) -> float:
        return float(impressions[mask].sum() / appearances[mask].sum()) if appearances[mask].sum() else float("nan")

    return {"tracked_ads": int(tracked.sum()), "underestimated_early_share": share(tracked, early < -MISESTIMATED),
            "stuck_underestimated": share(under, late < -MISESTIMATED),
            "stuck_overestimated": share(over, late > MISESTIMATED),
            "show_rate_underestimated": show_rate(under), "show_rate_others": show_rate(tracked & ~under)}
