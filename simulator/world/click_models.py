"""Click models (`world.click_model`): how a user clicks on the slate a query's page shows, from the world's truth.

Each takes the shown slate as [B, K] arrays, top first (slates fill from the top, so empty positions come last):
`separable` = relevance × lift[t] × examination[t, slot] (the position-based truth), `attractive` = relevance ×
lift[t] × examination[t, the page's top slot] (the chance a user who looks at the ad clicks it), the click noise of
each shown candidate, and the cascade's uniforms [B, K, 2] (None when the model needs none). It returns the true
CTR of each shown ad given the whole slate, and the clicks.

- position_based: examination depends on the position alone; CTR = `separable`, a click iff noise < CTR (the
  teaching world's model, and the special case the auction assumes).
- cascade (the dynamic Bayesian network of Chapelle & Zhang, WWW 2009): the user looks at the top ad, clicks it
  with its attractiveness, is satisfied by a click with probability σ and stops, and otherwise goes on to the next
  ad with probability γ. An ad's CTR then depends on the ads above it: a·Π_{j<k} γ(1 − a_j σ).

With either, the trust term (`world.trust_false_click`, `world.trust_true_click_drop`; `trusted`) replaces a looking
user's attractiveness a at page rank r by ε⁺_r·a + ε⁻_r·(1 − a): the top ads draw clicks from trust, so an ad's CTR
over positions is no longer its attractiveness times a position effect.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np


class ClickModel(NamedTuple):
    """One `world.click_model`: whether it draws the cascade's uniforms, and its (truth, clicks) on a slate."""

    cascade_uniforms: bool
    clicks: Callable[..., tuple[np.ndarray, np.ndarray]]


def position_based(separable: np.ndarray, attractive: np.ndarray, noise: np.ndarray, uniforms: np.ndarray | None,
                   continue_rate: float, satisfaction: float) -> tuple[np.ndarray, np.ndarray]:
    """True CTR = the separable truth; a click iff the candidate's noise is below it."""
    return separable, noise < separable


def cascade(separable: np.ndarray, attractive: np.ndarray, noise: np.ndarray, uniforms: np.ndarray,
            continue_rate: float, satisfaction: float) -> tuple[np.ndarray, np.ndarray]:
    """The DBN: top down, a looking user clicks with the ad's attractiveness; after a click they stop when satisfied
    (uniform 1 < σ), and otherwise go on with probability γ (uniform 0 < γ). Truth = attractiveness × P(looking)."""
    truth = np.zeros(attractive.shape, np.float32)
    clicked = np.zeros(attractive.shape, bool)
    looking_chance = np.ones(attractive.shape[0], np.float32)
    looking = np.ones(attractive.shape[0], bool)
    for k in range(attractive.shape[1]):
        a = attractive[:, k]
        truth[:, k] = a * looking_chance
        clicked[:, k] = looking & (noise[:, k] < a)
        satisfied = clicked[:, k] & (uniforms[:, k, 1] < satisfaction)
        looking &= ~satisfied & (uniforms[:, k, 0] < continue_rate)
        looking_chance = looking_chance * np.float32(continue_rate) * (1 - a * np.float32(satisfaction))
    return truth, clicked


def trusted(attractive, ratio, false_click: float, true_click_drop: float):
    """The trust term (Vardasbi et al., CIKM 2020; ULTRA's TrustBiasedModel) on a page's [..., K] positions, top first:
    a user who looks at the ad at rank r clicks it with ε⁺_r·a + ε⁻_r·(1 − a) instead of its attractiveness a, where
    ε⁺_r = 1 − drop·(r + 1) and ε⁻_r = ε⁻ / r. `ratio` is each position's examination over the top's. Returns the
    position-based CTR and the attractiveness with the term; numpy or JAX arrays (operators only)."""
    rank = np.arange(1, ratio.shape[-1] + 1, dtype=np.float32)
    attracted = attractive * (1 - np.float32(true_click_drop) * (rank + 1)) + (1 - attractive) * (np.float32(false_click) / rank)
    return ratio * attracted, attracted


def trusted_ctr(ctr, false_click: float, true_click_drop: float):
    """CTR[..., K] at a page's positions (top first; position-based) → the same with the trust term: the top's CTR is
    the attractiveness, and each position's over it the examination ratio (0 where the top's CTR is 0)."""
    top = ctr[..., :1]
    return trusted(top, ctr / (top + (top == 0)), false_click, true_click_drop)[0]


CLICK_MODELS: dict[str, ClickModel] = {"position_based": ClickModel(False, position_based),
                                       "cascade": ClickModel(True, cascade)}


def cascade_welfare(value: np.ndarray, attractive: np.ndarray, continue_rate: float, satisfaction: float) -> np.ndarray:
    """Expected welfare Σ_k value_k · a_k · Π_{j<k} γ(1 − a_j σ) of slates [..., K] (top first) under the cascade."""
    looking = np.cumprod(np.concatenate([np.ones_like(attractive[..., :1]),
                                         continue_rate * (1 - attractive[..., :-1] * satisfaction)], axis=-1), axis=-1)
    return np.sum(value * attractive * looking, axis=-1)


def best_cascade_slate(value: np.ndarray, attractive: np.ndarray, positions: int, continue_rate: float,
                       satisfaction: float, shortlist: int = 6) -> float:
    """The highest expected cascade welfare of any slate of up to `positions` ads, each in any treatment, by
    enumeration over the `shortlist` ads with the highest value × best attractiveness (value[N], attractive[N, T]).

    The oracle that knows the slate effect: what an auction assuming separable per-position CTRs is measured against.
    """
    import itertools

    order = np.argsort(-(value * attractive.max(axis=1)))[:shortlist]
    value, attractive = value[order], attractive[order]
    treatments = attractive.shape[1]
    best = 0.0
    for length in range(1, min(positions, len(order)) + 1):
        slates = np.array(list(itertools.permutations(range(len(order)), length)))  # [S, length]
        formats = np.array(list(itertools.product(range(treatments), repeat=length)))  # [F, length]
        a = attractive[slates[:, None, :], formats[None, :, :]]  # [S, F, length]
        welfare = cascade_welfare(value[slates][:, None, :], a, continue_rate, satisfaction)
        best = max(best, float(welfare.max()))
    return best
