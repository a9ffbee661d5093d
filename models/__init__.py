"""CTR models pCTR = τ(Q·U) and their online trainer; arrays in, predictions and updated parameters out."""

from models.config import DataConfig, ModelConfig, TrainConfig
from models.ctr import CtrModel, FeatureSpec, SparseField, TowerShape
from models.layers import HiddenLayers
from models.metrics import auc, calibration_by_decile, log_loss
from models.optim import make_optimizer
from models.trainer import Examples, OnlineTrainer, Scorer

__all__ = ["CtrModel", "DataConfig", "Examples", "FeatureSpec", "HiddenLayers", "ModelConfig", "OnlineTrainer", "Scorer",
           "SparseField", "TowerShape", "TrainConfig", "auc", "calibration_by_decile", "log_loss", "make_optimizer"]
