"""Layers, activations by name and the model zoo."""

from trainlab.nn.activations import ACTIVATIONS, make_activation
from trainlab.nn.zoo import MODELS, BasicBlock, cnn, mlp, resnet

__all__ = ["ACTIVATIONS", "MODELS", "BasicBlock", "cnn", "make_activation", "mlp", "resnet"]
