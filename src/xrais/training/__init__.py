"""Training and evaluation of the xrais models: shard data, training loop (checkpoints, resume,
DistributedDataParallel), metrics, learning curves, evaluation on labelled data."""
from .config import PRESETS, ConfigError, TrainConfig
from .data import DataError, QuadrantDataset, ShardSet, open_shards, validation_mask
from .distributed import Context, launch_environment
from .evaluate import Evaluation, evaluate_images, evaluate_shards, read_labels_json
from .metrics import RESOLUTION_TOLERANCE, average_ranks, compute, roc_auc, spearman
from .trainer import Trainer, TrainResult, train

__all__ = [
    "ConfigError", "Context", "DataError", "Evaluation", "PRESETS", "QuadrantDataset", "RESOLUTION_TOLERANCE",
    "ShardSet", "TrainConfig", "TrainResult", "Trainer", "average_ranks", "compute", "evaluate_images",
    "evaluate_shards", "launch_environment", "open_shards", "read_labels_json", "roc_auc", "spearman", "train",
    "validation_mask",
]
