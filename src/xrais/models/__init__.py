"""xrais models: the shell-profile resolution network (:mod:`xrais.models.profile`), the ResNet
family with its geometry-aware resolution head and multi-lattice head, and the registry of trained
models. Example::

    import xrais.models
    model = xrais.models.load("resolution", device="auto")   # checks the weights' sha256
    inverse_d = model.predict(quadrants, frame.geometry)       # (B,) 1/d in Å⁻¹, one per quadrant
    mean, sigma = model.predict_with_sigma(quadrants, frame.geometry, pooled=True)  # the image's, with σ
    xrais.models.resolution_from_inverse_d(inverse_d)          # d in Å (inf: no diffraction)
"""
from .geometry import (NO_DIFFRACTION_INVERSE_D, b_factor_from_inverse_d, inverse_d_from_b_factor,
                       inverse_d_from_radius, radius_from_inverse_d, resolution_from_inverse_d)
from .network import GEOMETRY_COLUMNS, KINDS, Architecture, XraisNet
from .predictor import XraisModel, cpu_seconds_per_quadrant, geometry_tensor, resolve_device
from .registry import (WEIGHTS_DIR, ModelError, available, export, load, load_network, locate, read_card,
                       register, unwrap)
from .resnet import ResNet, parameter_count

__all__ = [
    "Architecture", "GEOMETRY_COLUMNS", "KINDS", "ModelError", "NO_DIFFRACTION_INVERSE_D", "ResNet", "WEIGHTS_DIR",
    "XraisModel", "XraisNet", "available", "b_factor_from_inverse_d", "cpu_seconds_per_quadrant", "export", "geometry_tensor",
    "inverse_d_from_b_factor", "inverse_d_from_radius", "load", "load_network", "locate", "parameter_count",
    "radius_from_inverse_d", "read_card", "register", "resolution_from_inverse_d", "resolve_device", "unwrap",
]
