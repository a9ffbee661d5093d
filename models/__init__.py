"""CTR models pCTR = τ(Q·U) and their online trainer; arrays in, predictions and updated parameters out."""

from models.ctr import CtrModel, FeatureSpec, HiddenLayers, TowerShape
from models.losses import LossConfig
from models.metrics import auc, calibration_by_decile, log_loss
from models.optim import OptimizerConfig, make_optimizer
from models.trainer import Examples, OnlineTrainer, Scorer

__all__ = ["CtrModel", "Examples", "FeatureSpec", "HiddenLayers", "LossConfig", "OnlineTrainer", "OptimizerConfig", "Scorer",
           "TowerShape", "auc", "calibration_by_decile", "log_loss", "make_optimizer"]
