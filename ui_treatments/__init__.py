"""The UI treatment catalogue: the ways an ad can be shown (its formats), read by the world, the model and the auction."""

from ui_treatments.catalogue import CATALOGUE, Treatment, treatment_arrays, treatments_by_name

__all__ = ["CATALOGUE", "Treatment", "treatment_arrays", "treatments_by_name"]
