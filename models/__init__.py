"""CTR models pCTR = τ(Q·U) and their online trainer; arrays in, predictions and updated parameters out."""

from models.ctr import FactorizedCtr, FeatureSpec
from models.metrics import auc, calibration_by_decile, log_loss
from models.trainer import OnlineTrainer, Scorer

__all__ = ["FactorizedCtr", "FeatureSpec", "OnlineTrainer", "Scorer", "auc", "calibration_by_decile", "log_loss"]
