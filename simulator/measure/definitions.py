"""What each reported number means: one line per metric, read by the tables and the app."""

from __future__ import annotations

METRIC_DOC = {
    "pd": "prediction difference between nuisance-seed replicas, each in its own closed loop, per example over every "
          "valid (candidate, treatment, position) of the probed queries (a fixed set)",
    "pd_impressions": "the same over the primary's logged impressions on the probed queries, scored by both",
    "pd_shown_either": "the same over the placements either replica showed (the set depends on both arms)",
    "pd_open_loop": "the same, when the replica trains on the primary's logs (no feedback loop: model irreproducibility)",
    "component_spread": "ensembles: mean over the last 20,000 logged examples of std / mean of the components' pCTRs",
    "clipped_share": "CowClip: share of the Q-embedding rows touched by a step whose gradient the clip cut, over every "
                     "step of the training: does the clip bind, and how often?",
    "ad_set_churn": "share of queries whose shown ad set differs between the replicas",
    "ad_set_churn_open_loop": "the same, when the replica trains on the primary's logs (open loop)",
    "winner_churn": "share of queries whose top ad differs between the replicas",
    "bottom_impression_share": "share of impressions in the bottom positions of their device's page (below "
                               "world.top_slots; slates fill from the top, so only under a full top)",
    "ads_query_churn": "mean |ads shown by one replica − by the other| per query / mean ads per query (Table 3's "
                            "ads/query churn)",
    "revenue_gap": "|revenue of the replica − of the primary| / revenue of the primary (closed loop)",
    "welfare_gap": "the same for welfare",
    "pv_logloss_gap": "PV log loss over the oracle's, last quarter of simulated time (relative)",
    "pv_auc": "PV AUC (whole run: the learning curve included)",
    "pv_auc_final": "PV AUC over the last quarter of simulated time (the trained model, as the log-loss gap)",
    "auc_shortfall_final": "the oracle's AUC − PV AUC on the same last-quarter examples (closed loops show different "
                           "ads, so this is comparable across arms)",
    "per_query_auc": "PV AUC within queries (pairs of the same query)",
    "training_seconds": "wall seconds in the trainer (teacher included)",
    "test_auc": "batch-scaling study: AUC on the held-out last tenth of the logs after the last epoch",
    "test_per_query_auc": "the same within queries", "steps": "gradient steps over all epochs",
    "test_logloss_gap": "the same study: test log loss over the oracle's (relative)",
    "bias_position_maxabs": "max over positions of |Σ pCTR / Σ true CTR − 1| (shown ads, second half)",
    "bias_treatment_maxabs": "same over treatments", "bias_pctr_decile_maxabs": "same over pCTR deciles (PV)",
    "error_never_shown": "mean |log(pCTR / true CTR)| on probed (query context, ad, treatment, position) cells never "
                         "shown in the run",
    "error_rarely_shown": "same, shown 1–9 times", "error_often_shown": "same, shown ≥ 10 times",
    "position_effect_error": "mean |log(learned / true)| of CTR(p) / CTR(top) in the treatment the auction would serve "
                             "each probed ad (its highest-pCTR treatment at the top)",
    "treatment_effect_error": "mean |log(learned / true)| of CTR(t, top) / CTR(treatment served most, top)",
    "quality_rank_correlation": "Spearman correlation over ads of learned vs true quality (mean log CTR at the top, "
                                "in the treatment served, over the ad's probes in the second half)",
    "stuck_underestimated": "of the ads underestimated early (pCTR < true / 1.5 in the 5–25 % window), the share "
                            "still underestimated in the last quarter",
    "stuck_overestimated": "the same for overestimated ads (pCTR > 1.5 × true), the comparison for the stuck share",
    "underestimated_early_share": "share of tracked ads underestimated early",
    "show_rate_underestimated": "impressions per candidate appearance, between the windows, of the early-underestimated ads",
    "show_rate_others": "the same for the other tracked ads",
    "scoring_us_per_candidate": "scoring wall µs per candidate (all treatments × positions; synchronous stages)",
    "calibration_vs_truth": "Σ w·pCTR / Σ w·true CTR − 1 over PV examples, second half (importance-weighted)",
    "shown_calibration_vs_truth": "Σ pCTR / Σ true CTR − 1 over shown ads, second half (serving-time predictions)",
    "trained_examples": "examples the trainer consumed",
}

# Numbers only some rows of a study have (a claim that reads one elsewhere is an error when its study loads):
# replica arms' irreproducibility numbers, and the batch-scaling protocol's rows ("offline_<setting>"), which have
# these and no others.
REPLICA_METRICS = tuple(f"{name}{suffix}" for name in ("pd", "pd_impressions", "pd_shown_either", "ad_set_churn",
                                                       "winner_churn", "ads_query_churn", "revenue_gap", "welfare_gap")
                        for suffix in ("", "_open_loop"))
PROTOCOL_METRICS = ("test_auc", "test_per_query_auc", "test_logloss_gap", "steps")  # no arm has these
OFFLINE_METRICS = (*PROTOCOL_METRICS, "training_seconds", "clipped_share")

# The testbed's terms and headline numbers in a sentence or two each: the app's glossary page and its help texts.
GLOSSARY = {
    "revenue": "what advertisers paid for their clicks over the run (the sum of the prices per click of clicked ads), "
               "in the bids' money units",
    "welfare": "the expected value the shown ads created: Σ over shown ads of the advertiser's value per click × "
               "the ad's true CTR there (bids are truthful: value = bid), in the bids' money units",
    "pv_logloss": "progressive-validation log loss: each example is scored by the model before the model trains on "
                  "it, so every example is a test example (single pass, no held-out set); lower is better",
    "oracle_logloss": "the same log loss with the world's true CTR as the prediction: the floor a model reaches in "
                      "expectation on these examples (the clicks are random even when the CTR is known)",
    "oracle": "a model that scores with the world's true CTR; the testbed's reference for accuracy, revenue and "
              "welfare (production systems cannot have one)",
    "normalized_entropy": "log loss over the entropy of the mean click rate: 1 is no better than predicting the "
                          "average; lower is better",
    "auc": "the chance that a random clicked example is scored above a random non-clicked one (0.5 is chance)",
    "calibration": "Σ pCTR / Σ clicks (or / Σ true CTR, against truth) − 1: 0 is calibrated, > 0 over-predicts",
    "pd": "prediction difference (SmeLU eq. 2): mean |p₁ − p₂| / ((p₁ + p₂) / 2) of two models over the same "
          "fixed examples; 0 is identical, 2 is the bound. In the reports the two are replicas that differ only in a "
          "nuisance seed (irreproducibility); on the Compare page they are A and B",
    "churn": "ad-set churn: the share of queries whose shown ad set differs between two systems on the same traffic; "
             "winner churn: the same for the top ad; ads/query churn (Factory Floor Table 3): the relative "
             "difference in the number of ads shown per query",
    "credit_attribution": "how well the model separates what an ad earns from where and how it was shown: the "
                          "learned position and treatment effects against the true ones, per served placement",
    "paired_replay": "two systems run on the same queries and the same user randomness, so every difference "
                     "between them comes from what differs between the systems",
    "interval": "every ± and band is a 95 % t-interval over seeds (n − 1 degrees of freedom): with 2 seeds it is "
                "12.7 standard errors wide on each side, so a handful of seeds resolves little",
    "vcg": "the Vickrey–Clarke–Groves auction: the page (ads, treatments, positions) of highest total value; each "
           "shown ad pays the harm its presence does to the others",
    "gsp": "generalized second price. In the loop (`auction.mechanism = gsp`) and the explorer's 'GSP, all "
           "treatments': VCG's page, each ad paying its threshold price, the least bid that keeps its placement. "
           "The classic GSP (the explorer's text-only column): ads ranked by bid × quality, each paying the next "
           "ad's score over its own quality",
    "position": "positions count from 1 (the top) in the app and reports; JSON auction files count from 0",
}
