"""The norm layers of a network checked against their input shapes, before training.

A statistic computed from a single value is x − μ = 0: the layer then outputs its β whatever its input
(an instance norm on a 1×1 map; BN at one value per channel), silently. The extents of each layer's
training statistics come from its registry entry (`statistics`), as do any checks a norm needs of the
whole network (`check_inputs`: `bgn`'s groups of C·H·W, `gbgn`'s groups of examples). The shapes are
known from the backbone before training (`models.backbones.shapes`): `check_norm_inputs` refuses such
a network at build time, or at start-up once the batch is known, naming the layer.
"""
from __future__ import annotations

from torch import nn

from models.norms.extents import Shape
from models.norms.noise import OutputNoise
from models.norms.registry import norm_spec


def check_norm_inputs(net: nn.Module, norm: str, shapes: dict[str, Shape], batch: str = "") -> None:
    """Refuse a network whose norm layers (`shapes`: module path -> input shape) cannot normalize their
    input in training; `batch` names where N comes from (e.g. "data.batch_size=8"), when it is known."""
    spec = norm_spec(norm)
    layers = {path: _unwrap(net.get_submodule(path)) for path in shapes}
    if spec.check_inputs is not None:
        spec.check_inputs(norm, layers, shapes, batch)
    for path, layer in layers.items():
        shape = shapes[path]
        for over, count in spec.statistics(layer, shape):
            if count == 1:
                size = "×".join(str(d) for d in shape if d is not None)
                source = f" ({batch})" if shape[0] is not None and batch else ""
                raise ValueError(
                    f"norm {norm!r} at {path}: its training statistic {over} covers 1 value of its {size} input"
                    f"{source}, so the layer would output its β whatever the input; use larger images, fewer "
                    "groups, a larger batch or another norm")


def _unwrap(layer: nn.Module) -> nn.Module:
    """The norm layer inside the output-noise wrapper `make_norm` puts around any layer."""
    return layer.layer if isinstance(layer, OutputNoise) else layer
