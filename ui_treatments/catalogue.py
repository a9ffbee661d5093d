"""Treatment catalogue: each treatment's name, page height, U-tower features and true examination effect.

The simulator's click model reads `examination_multiplier`, the model's U tower reads `features`,
and the auction reads `height`; this module is the one place all three come from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Treatment:
    """One UI treatment (ad format)."""

    name: str
    height: int  # lines of page space the treatment takes
    examination_multiplier: float  # true effect on the user's examination probability (text = 1)
    features: tuple[int, ...]  # binary features the U tower sees: (has_extensions, has_image)


CATALOGUE: tuple[Treatment, ...] = (
    Treatment("text", height=3, examination_multiplier=1.0, features=(0, 0)),
    Treatment("text_extensions", height=4, examination_multiplier=1.25, features=(1, 0)),
    Treatment("image", height=6, examination_multiplier=1.6, features=(0, 1)),
)

FEATURE_NAMES: tuple[str, ...] = ("has_extensions", "has_image")


def treatments_by_name(names: list[str] | tuple[str, ...]) -> tuple[Treatment, ...]:
    """Look treatments up by name, in the order given; unknown names raise ValueError naming the allowed ones."""
    known = {t.name: t for t in CATALOGUE}
    missing = [n for n in names if n not in known]
    if missing:
        raise ValueError(f"unknown treatment {missing[0]!r}; allowed: {', '.join(known)}")
    return tuple(known[n] for n in names)


def treatment_arrays(treatments: tuple[Treatment, ...]) -> dict[str, np.ndarray]:
    """Arrays over the chosen treatments: heights int32[T], examination float32[T], features float32[T, F]."""
    return {
        "height": np.array([t.height for t in treatments], dtype=np.int32),
        "examination": np.array([t.examination_multiplier for t in treatments], dtype=np.float32),
        "features": np.array([t.features for t in treatments], dtype=np.float32),
    }
