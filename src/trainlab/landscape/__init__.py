"""Loss landscapes and sharpness, pure over parameter lists (`torch.func.functional_call`):
nothing here leaves the user's model modified."""

from trainlab.landscape.hessian import (
    HVP,
    HVP_METHODS,
    Eigenpairs,
    LanczosResult,
    SpectralDensity,
    TraceEstimate,
    eigenvalue_density,
    hutchinson_trace,
    hvp_double_backward,
    hvp_forward_over_reverse,
    lanczos,
    make_hvp,
    smoothed_density,
    top_eigenvalues_lanczos,
    top_eigenvalues_power,
)
from trainlab.landscape.loss import (
    BATCHNORM_MODES,
    ParamLoss,
    loss_of_params,
    model_params,
    split_batches,
)
from trainlab.landscape.sharpness import (
    SamSharpness,
    SharpnessReport,
    SubsetSharpness,
    relative_spread,
    sam_sharpness,
    sharpness_report,
)

__all__ = [
    "BATCHNORM_MODES",
    "HVP",
    "HVP_METHODS",
    "Eigenpairs",
    "LanczosResult",
    "ParamLoss",
    "SamSharpness",
    "SharpnessReport",
    "SpectralDensity",
    "SubsetSharpness",
    "TraceEstimate",
    "eigenvalue_density",
    "hutchinson_trace",
    "hvp_double_backward",
    "hvp_forward_over_reverse",
    "lanczos",
    "loss_of_params",
    "make_hvp",
    "model_params",
    "relative_spread",
    "sam_sharpness",
    "sharpness_report",
    "smoothed_density",
    "split_batches",
    "top_eigenvalues_lanczos",
    "top_eigenvalues_power",
]
