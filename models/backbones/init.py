"""Weight initialisation shared by the CIFAR backbones.

Convolutions get Kaiming-normal weights (He et al. 2015, "Delving Deep into Rectifiers": std =
√(2 / fan_out) for ReLU networks, the torchvision ResNet/VGG/DenseNet choice) and zero biases.
Normalization layers keep the init their factory gives them (γ = 1, β = 0, GNPlus λ = `lambda_init`),
and linear layers keep PyTorch's default, as in the GN paper's published code.
"""
from __future__ import annotations

from torch import nn


def init_conv_weights(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
