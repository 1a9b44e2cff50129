"""Forward+backward time of every norm layer as a ratio to nn.BatchNorm2d, at ResNet-18 shapes.

normlab's target: every GNPlus variant ≤ 1.2× BatchNorm on CPU (issue 27; dense gradient) and on a GPU. Two reference rows
show where GNPlus would be without the fused arithmetic (models/norms/moments.py):
`gn_plus_gn_first[reference_arithmetic]` (the option reference_arithmetic=True: the formulas of the GN
paper's code) and `gn_plus_gn_first[torch GN+BN]` (the plain composition of torch's GroupNorm and
BatchNorm kernels).
CPU in float32; on a GPU also bfloat16. All layers of one shape are timed interleaved in one run.

Two upstream gradients: `dense` (random, contiguous, as a conv's backward hands a layer) and `expanded`
(one value at stride 0, as `y.sum().backward()` gives): a layer that needs dense rows would copy it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.timing import interleaved_medians, ratios
from models.norms import make_norm, norm_names

SHAPES = [(128, 64, 32, 32), (128, 256, 8, 8)]
GROUPS = 32


def _torch_composition(num_channels: int) -> torch.nn.Module:
    layer = make_norm("gn_plus_gn_first", num_channels, groups=GROUPS)

    class Composition(torch.nn.Module):
        def forward(self, x):
            s = torch.sigmoid(layer.lambda_)
            z = F.group_norm(x, GROUPS, eps=layer.eps)
            mixed = s * z + (1 - s) * layer.bn(z)
            return torch.addcmul(layer.bias[:, None, None], mixed, layer.weight[:, None, None])

    composition = Composition()
    composition.layer = layer
    return composition


def _layers(num_channels: int) -> dict[str, torch.nn.Module]:
    layers = {"bn(torch)": torch.nn.BatchNorm2d(num_channels)}
    layers.update({name: make_norm(name, num_channels, groups=GROUPS) for name in norm_names()})
    layers["gn_plus_gn_first[reference_arithmetic]"] = make_norm("gn_plus_gn_first", num_channels,
                                                                 groups=GROUPS, reference_arithmetic=True)
    layers["gn_plus_gn_first[torch GN+BN]"] = _torch_composition(num_channels)
    return layers


def _forward_backward(layer: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor):
    inputs = [x] + [p for p in layer.parameters()]

    def step():
        torch.autograd.grad(layer(x), inputs, grad, allow_unused=True)

    return step


def _cases() -> list[tuple[str, torch.dtype]]:
    cases = [("cpu", torch.float32)]
    if torch.cuda.is_available():
        cases += [("cuda", torch.float32), ("cuda", torch.bfloat16)]
    return cases


def _gradients(shape, device, dtype, gen) -> dict[str, torch.Tensor]:
    return {"dense": torch.randn(shape, generator=gen).to(device, dtype),
            "expanded": torch.ones((), device=device, dtype=dtype).expand(shape)}


def run() -> list[dict]:
    rows = []
    for device, dtype in _cases():
        for shape in SHAPES:
            gen = torch.Generator().manual_seed(0)
            x = torch.randn(shape, generator=gen).to(device, dtype).requires_grad_()
            layers = {name: layer.to(device, dtype) for name, layer in _layers(shape[1]).items()}
            for grad_kind, grad in _gradients(shape, device, dtype, gen).items():
                medians = interleaved_medians({name: _forward_backward(layer, x, grad)
                                               for name, layer in layers.items()}, repeats=7, warmup=2, device=device)
                for name, ratio in ratios(medians, "bn(torch)").items():
                    rows.append({"device": device, "dtype": str(dtype).removeprefix("torch."),
                                 "shape": "x".join(map(str, shape)), "grad": grad_kind, "layer": name,
                                 "fwd_bwd_ms": round(medians[name] * 1e3, 2), "ratio_to_bn": round(ratio, 2)})
    return rows
