"""Batch statistics over the global batch under DDP, on CPU (gloo) as well as on CUDA.

`torch.nn.SyncBatchNorm` refuses CPU tensors, so Lightning's `sync_batchnorm: true` cannot run on a
CPU cluster or be tested without GPUs. `GlobalBatchNorm2d` gives the same semantics anywhere: each
rank computes per-channel sums (Σx, Σx², count) of its shard, one autograd-aware all-reduce turns
them into the global batch's mean and biased variance, and backward all-reduces their gradients,
so the result equals BatchNorm over the concatenated global batch (forward, gradients and running
statistics: momentum update with the global unbiased variance). The sums are taken in float64:
E[x²] − E[x]² in float32 loses digits when |mean| ≫ std.

`NormlabSyncBatchNorm` is the Lightning layer-sync plugin the CLI installs when
`trainer.sync_batchnorm` is on: torch's SyncBatchNorm on CUDA, `GlobalBatchNorm2d` elsewhere. Every
`nn.BatchNorm2d` is converted, the BN parts of the GNPlus layers included.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from pytorch_lightning.plugins.layer_sync import TorchSyncBatchNorm
from torch import nn


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the gradient of a sum is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics come from the whole DDP world's batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and _distributed()):
            return super().forward(x)
        x64 = x.double()
        local = torch.stack([
            x64.sum(dim=(0, 2, 3)), (x64 * x64).sum(dim=(0, 2, 3)),
            torch.full((x.shape[1],), x.numel() / x.shape[1], dtype=torch.float64, device=x.device),
        ])
        total_sum, total_sq, count = _AllReduceSum.apply(local)
        mean = total_sum / count
        var = total_sq / count - mean * mean
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * count / (count - 1).clamp(min=1)
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        scale = torch.rsqrt(var + self.eps)
        shift = -mean * scale
        if self.affine:
            scale = scale * self.weight
            shift = shift * self.weight + self.bias
        return torch.addcmul(shift.to(x.dtype)[:, None, None], x, scale.to(x.dtype)[:, None, None])


def convert_to_global_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every nn.BatchNorm2d in `module` by a GlobalBatchNorm2d sharing its parameters and buffers."""
    if type(module) is nn.BatchNorm2d:
        converted = GlobalBatchNorm2d(module.num_features, module.eps, module.momentum, module.affine,
                                      module.track_running_stats)
        converted.load_state_dict(module.state_dict())
        if module.affine:
            converted.weight, converted.bias = module.weight, module.bias  # the optimizer's own tensors
        converted.train(module.training)
        return converted
    for name, child in module.named_children():
        module.add_module(name, convert_to_global_batchnorm(child))
    return module


class NormlabSyncBatchNorm(TorchSyncBatchNorm):
    """Lightning layer sync: torch's SyncBatchNorm on CUDA, GlobalBatchNorm2d on other devices."""

    def apply(self, model: nn.Module) -> nn.Module:
        on_cuda = any(p.is_cuda for p in model.parameters())
        return super().apply(model) if on_cuda else convert_to_global_batchnorm(model)

    def revert(self, model: nn.Module) -> nn.Module:
        for name, child in model.named_children():
            if isinstance(child, GlobalBatchNorm2d):
                plain = nn.BatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                       child.track_running_stats)
                plain.load_state_dict(child.state_dict())
                if child.affine:
                    plain.weight, plain.bias = child.weight, child.bias
                model.add_module(name, plain)
            else:
                self.revert(child)
        return super().revert(model)
