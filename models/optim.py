"""Optimizers and learning-rate schedules from plain config values, with parameter groups.

Groups (each only if non-empty):
- `decay`:   every other parameter, with `weight_decay`;
- `norm`:    γ, β of normalization layers, weight decay only if `norm_weight_decay` (decay on γ
             shrinks the layer's output scale, which the norm then undoes: it mostly adds noise);
- `lambda`:  the GNPlus mixing logits λ: never decayed (decay would pull every layer to s = 0.5),
             learning rate × `lambda_lr_scale`.

`limit_lambda_step(model, lambda_max_step)` wraps an optimizer step and clamps each λ's change in
that step to ±lambda_max_step: the GN paper (§5, SVHN) attributes GNPlus's explosions to λ
changing too fast and suggests limiting its rate of change.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator, Literal

import torch
from torch import nn

from models.norms import GNPlus, is_norm_module

OptimizerName = Literal["sgd", "adam", "adamw"]
ScheduleName = Literal["constant", "step", "multistep", "cosine", "onecycle"]


def parameter_groups(model: nn.Module, weight_decay: float, norm_weight_decay: bool,
                     lambda_lr_scale: float, lr: float) -> list[dict]:
    decay, norm, lambdas = [], [], []
    for module in model.modules():
        for pname, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            if isinstance(module, GNPlus) and pname == "lambda_":
                lambdas.append(p)
            elif is_norm_module(module):
                norm.append(p)
            else:
                decay.append(p)
    groups = [
        {"name": "decay", "params": decay, "weight_decay": weight_decay},
        {"name": "norm", "params": norm, "weight_decay": weight_decay if norm_weight_decay else 0.0},
        {"name": "lambda", "params": lambdas, "weight_decay": 0.0, "lr": lr * lambda_lr_scale},
    ]
    return [g for g in groups if g["params"]]


@contextmanager
def limit_lambda_step(model: nn.Module, lambda_max_step: float | None) -> Iterator[None]:
    """Clamp every GNPlus λ to within ±`lambda_max_step` of its value before the wrapped step.

    None: no limit. The optimizer's state (momentum, Adam moments) is left as the step made it; only
    λ itself is clamped, after the step, so the limit holds whatever the optimizer and LR.
    """
    if lambda_max_step is None:
        yield
        return
    lambdas = [m.lambda_ for m in model.modules() if isinstance(m, GNPlus)]
    before = [p.detach().clone() for p in lambdas]
    yield
    with torch.no_grad():
        for p, start in zip(lambdas, before):
            p.copy_(torch.clamp(p, start - lambda_max_step, start + lambda_max_step))


def build_optimizer(name: OptimizerName, groups: list[dict], lr: float, momentum: float,
                    betas: tuple[float, float], fused: bool = False) -> torch.optim.Optimizer:
    """`fused`: one multi-tensor kernel per step instead of a loop over parameters (same arithmetic)."""
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, fused=fused or None)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=betas, fused=fused or None)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused or None)
    raise ValueError(f"unknown optimizer {name!r}; allowed: sgd, adam, adamw")


def lr_multiplier(schedule: ScheduleName, total_steps: int, steps_per_epoch: int, milestones: list[int],
                  gamma: float, step_size: int, warmup_steps: int):
    """The factor on the base LR at optimizer step t (a LambdaLR function, stepped every batch).

    `milestones` and `step_size` are in epochs, as the papers state them; the schedule is applied per
    step so that step and epoch boundaries agree however many batches an epoch has.

    Each equals torch's scheduler stepped per batch (tests/models/test_optim_schedules.py): `StepLR`,
    `MultiStepLR`, `CosineAnnealingLR`, the warm-up `LinearLR` multiplied in (`ChainedScheduler`), and
    `OneCycleLR` with a linear rise and a cosine fall. One closed form in a `LambdaLR` rather than those
    objects: torch's one-cycle anneals both phases alike, and a checkpoint keeps no horizon (T, the
    milestones), so a resumed run with more epochs follows the new one.
    """
    if schedule not in ("constant", "step", "multistep", "cosine", "onecycle"):
        raise ValueError(f"unknown schedule {schedule!r}; allowed: constant, step, multistep, cosine, onecycle")

    def factor(t: int) -> float:
        epoch = t // max(steps_per_epoch, 1)
        if schedule == "onecycle":
            # Linear warm-up to the peak over the first 30 %, cosine down to 1/1000 of it (Smith 2018).
            peak = max(int(0.3 * total_steps), 1)
            if t < peak:
                return 0.04 + 0.96 * t / peak
            progress = min((t - peak) / max(total_steps - peak, 1), 1.0)
            return 1e-3 + (1 - 1e-3) * 0.5 * (1 + math.cos(math.pi * progress))
        warm = min((t + 1) / warmup_steps, 1.0) if warmup_steps else 1.0
        if schedule == "constant":
            return warm
        if schedule == "step":
            return warm * gamma ** (epoch // step_size)
        if schedule == "multistep":
            return warm * gamma ** sum(epoch >= m for m in milestones)
        progress = min(t / max(total_steps, 1), 1.0)
        return warm * 0.5 * (1 + math.cos(math.pi * progress))

    return factor
