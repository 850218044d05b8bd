"""Weight initializers (``trainlab.init``): pure functions of a shape and a ``torch.Generator``.

Per tensor (each ``f(shape_or_tensor, *, generator, ...) -> new tensor``; see
:mod:`trainlab.init.tensors` for the formulas): ``zeros``, ``constant``, ``relu_bias``,
``normal``, ``uniform``, ``truncated_normal``, ``xavier_uniform``, ``xavier_normal``,
``kaiming_uniform``, ``kaiming_normal``, ``lecun_normal``, ``orthogonal``, ``torch_default``.
By name: ``INITIALIZERS``, ``get_initializer(name, **kwargs)``, ``resolve_initializer(spec)``;
in place: ``fill_(param, spec, generator=g)``. Whole models: ``init_model`` (per layer type)
and ``lsuv`` (Mishkin & Matas 2016). None of them touches torch's global RNG.
"""

from trainlab.init._common import NONLINEARITIES, ShapeLike, calculate_gain, compute_fans
from trainlab.init.lsuv import LsuvLayer, LsuvReport, lsuv
from trainlab.init.model import INIT_LAYER_TYPES, LayerInit, init_layers, init_model
from trainlab.init.registry import (
    INITIALIZERS,
    Initializer,
    InitSpec,
    fill_,
    get_initializer,
    resolve_initializer,
)
from trainlab.init.tensors import (
    TRUNCATED_NORMAL_STD_2SIGMA,
    constant,
    kaiming_normal,
    kaiming_uniform,
    lecun_normal,
    normal,
    orthogonal,
    relu_bias,
    torch_default,
    truncated_normal,
    truncated_normal_std,
    uniform,
    xavier_normal,
    xavier_uniform,
    zeros,
)

__all__ = [
    "INITIALIZERS",
    "INIT_LAYER_TYPES",
    "NONLINEARITIES",
    "TRUNCATED_NORMAL_STD_2SIGMA",
    "InitSpec",
    "Initializer",
    "LayerInit",
    "LsuvLayer",
    "LsuvReport",
    "ShapeLike",
    "calculate_gain",
    "compute_fans",
    "constant",
    "fill_",
    "get_initializer",
    "init_layers",
    "init_model",
    "kaiming_normal",
    "kaiming_uniform",
    "lecun_normal",
    "lsuv",
    "normal",
    "orthogonal",
    "relu_bias",
    "resolve_initializer",
    "torch_default",
    "truncated_normal",
    "truncated_normal_std",
    "uniform",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
]
