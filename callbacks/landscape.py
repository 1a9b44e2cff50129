"""`LandscapeProbe`: loss landscape, gradient predictiveness and effective β-smoothness along the
gradient, on the step's own batch (Santurkar et al. 2018, "How Does Batch Normalization Help
Optimization?", Fig. 4; the GN paper, Gunawan, Yin & Zhang 2022, §3, Figures 6–10).

At a measured step, with batch B, parameters θ and direction d (the raw gradient g = ∇L(θ;B), or the
optimizer's update direction), for each step size η_k:

    θ_k = θ − η_k·s·d                       (s = 1, or the parameter group's LR with relative_to_lr)
    landscape/loss@η_k      = L(θ_k;B)
    landscape/grad_pred@η_k = ‖∇L(θ_k;B) − g‖
    landscape/loss_min|max  = min|max of L(θ;B) and every L(θ_k;B)
    landscape/grad_pred_min|max over k
    landscape/beta_eff      = max_k ‖∇L(θ_k;B) − g‖ / ‖θ_k − θ‖   (the realized displacement)

The moved parameters are all trainable ones, or all but the norm layers' γ, β, λ with
`exclude_norm_params: true`; gradients and norms are taken over the moved parameters (the
smoothness of the landscape restricted to the coordinates that move).

Cost per measurement: one forward at θ (for L(θ;B)) and K forward + backward passes at the θ_k,
perturbing the parameters in place (no model copy per η). g is the training step's own `.grad` when
that is exactly this process's full-precision gradient of B; under DDP (`.grad` is already averaged
over ranks), gradient accumulation (it sums several batches) or mixed precision, the pass at θ also
takes the backward, so that g is ∇L(θ;B) of this rank's batch in fp32, comparable with the probes.
"""
from __future__ import annotations

from typing import Any, Literal, Sequence

import torch
from pytorch_lightning import LightningModule, Trainer

from callbacks.step_probe import OptimizerSnapshot, StepProbe, TrainingSnapshot, flat_norm, probe_loss
from models.norms import GNPlus, is_norm_module
from value_ranges import Range, check_values, is_finite_number, one_of

Direction = Literal["gradient", "update"]
OPTIONS = {
    "step_sizes": Range(lambda v: isinstance(v, (list, tuple)) and len(v) > 0
                        and all(is_finite_number(s) and s > 0 for s in v), "a non-empty list of numbers > 0"),
    "direction": one_of("gradient", "update"),
}
FULL_PRECISION = ("32-true", "64-true", "32", "64")


class LandscapeProbe(StepProbe):
    prefix = "landscape"

    def __init__(self, every_n_steps: int = 50, step_sizes: Sequence[float] = (0.05, 0.1, 0.2, 0.3, 0.4),
                 relative_to_lr: bool = False, direction: Direction = "gradient",
                 exclude_norm_params: bool = False):
        """
        Args:
            every_n_steps: measure at the global steps divisible by this (step 0 included).
            step_sizes: the η_k (absolute; the paper's largest is 0.4 × the gradient).
            relative_to_lr: multiply each η_k by the LR of the parameter's optimizer group.
            direction: `gradient` (the raw gradient, as the paper) or `update` (the step the
                optimizer would take from g, divided by the group LR: e.g. Adam's m̂/(√v̂+ε)).
            exclude_norm_params: keep the norm layers' γ, β and GNPlus λ fixed.
        """
        super().__init__(every_n_steps)
        check_values("landscape.", OPTIONS, {"step_sizes": step_sizes, "direction": direction})
        self.step_sizes = [float(s) for s in step_sizes]
        self.relative_to_lr, self.direction = relative_to_lr, direction
        self.exclude_norm_params = exclude_norm_params

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "step_sizes": self.step_sizes, "relative_to_lr": self.relative_to_lr,
                "direction": self.direction, "exclude_norm_params": self.exclude_norm_params}

    def moved_parameters(self, pl_module: LightningModule) -> list[torch.nn.Parameter]:
        fixed = set()
        if self.exclude_norm_params:
            fixed = {id(p) for m in pl_module.modules() if is_norm_module(m) or isinstance(m, GNPlus)
                     for p in m.parameters(recurse=False)}
        return [p for p in pl_module.parameters() if p.requires_grad and id(p) not in fixed]

    def measure(self, trainer: Trainer, pl_module: LightningModule, batch, optimizer: torch.optim.Optimizer,
                snapshot: TrainingSnapshot, batch_rng: dict[str, Any]) -> dict[str, float]:
        params = self.moved_parameters(pl_module)
        theta = [snapshot.parameters[p] for p in params]
        lr = {p: group["lr"] for group in optimizer.param_groups for p in group["params"]}
        loss, g = self._loss_and_reference_gradient(trainer, pl_module, batch, params, batch_rng)
        d = g if self.direction == "gradient" else update_direction(optimizer, params, g, theta, lr)
        step = [di * lr[p] for p, di in zip(params, d)] if self.relative_to_lr else d

        values, losses, preds, betas = {}, [float(loss)], [], []
        for eta in self.step_sizes:
            with torch.no_grad():
                for p, t, s in zip(params, theta, step):
                    p.copy_(t).sub_(s, alpha=eta)
                distance = flat_norm([p - t for p, t in zip(params, theta)])
            loss_k = probe_loss(pl_module, batch, batch_rng)
            grad_k = torch.autograd.grad(loss_k, params, materialize_grads=True)
            pred = flat_norm([a - b for a, b in zip(grad_k, g)])
            losses.append(float(loss_k.detach()))
            preds.append(float(pred))
            betas.append(float(pred / distance))
            values[f"loss@{eta:g}"], values[f"grad_pred@{eta:g}"] = losses[-1], preds[-1]
        return {"loss_min": min(losses), "loss_max": max(losses), "grad_pred_min": min(preds),
                "grad_pred_max": max(preds), "beta_eff": max(betas), **values}

    @staticmethod
    def _loss_and_reference_gradient(trainer, pl_module, batch, params, batch_rng):
        """L(θ;B) and g = ∇L(θ;B): `.grad` where it is exactly that, otherwise one more backward."""
        reuse = (trainer.world_size == 1 and trainer.accumulate_grad_batches == 1
                 and str(trainer.precision) in FULL_PRECISION and all(p.grad is not None for p in params))
        if reuse:
            with torch.no_grad():
                return probe_loss(pl_module, batch, batch_rng), [p.grad.detach() for p in params]
        loss = probe_loss(pl_module, batch, batch_rng)
        return loss.detach(), list(torch.autograd.grad(loss, params, materialize_grads=True))


def update_direction(optimizer: torch.optim.Optimizer, params: list[torch.Tensor], g: list[torch.Tensor],
                     theta: list[torch.Tensor], lr: dict) -> list[torch.Tensor]:
    """(θ − θ⁺)/LR, where θ⁺ is what one optimizer step from gradient `g` would make of θ (for plain
    SGD that is g itself). The optimizer's state is put back here; the parameters and `.grad` by
    the probe's `TrainingSnapshot`."""
    saved = OptimizerSnapshot(optimizer)
    stepped = {p for group in optimizer.param_groups for p in group["params"]}
    for p in stepped:
        p.grad = None  # only the moved parameters take part in the step
    for p, gi in zip(params, g):
        p.grad = gi.detach().clone()
    try:
        optimizer.step()
        with torch.no_grad():
            return [(t - p) / lr[p] if lr[p] > 0 else torch.zeros_like(t) for p, t in zip(params, theta)]
    finally:
        saved.restore()
