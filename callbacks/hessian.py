"""`HessianTopEigen`: the top eigenvalue of the training loss's Hessian on the step's own batch.

Power iteration on Hessian-vector products, as PyHessian does (Yao et al. 2020, "PyHessian: Neural
Networks Through the Lens of the Hessian", `eigenvalues()`): the gradient graph is built once
(`create_graph=True`), each iteration is one more backward through it, Hv = ∂(gᵀv)/∂θ, the estimate
is the Rayleigh quotient vᵀHv with ‖v‖ = 1, and iteration stops when it changes by less than
`tolerance` relative to its previous value, or after `iterations`. Power iteration finds the
eigenvalue of largest magnitude, which for a trained network's Hessian is its top (sharpness).
The starting vector comes from a private generator, so the training's RNG is not consumed; the
probe restores the training state like every `StepProbe`. Logged: `hessian/top_eig` and
`hessian/iterations` (the power iterations used), against the global step.
"""
from __future__ import annotations

from typing import Any

import torch
from pytorch_lightning import LightningModule, Trainer

from callbacks.step_probe import StepProbe, TrainingSnapshot, flat_norm, probe_loss
from value_ranges import check_values, finite_number, integer


class HessianTopEigen(StepProbe):
    prefix = "hessian"

    def __init__(self, every_n_steps: int = 100, iterations: int = 100, tolerance: float = 1e-3,
                 seed: int = 0):
        """
        Args:
            every_n_steps: measure at the global steps divisible by this (step 0 included).
            iterations: the most power iterations (Hessian-vector products) per measurement.
            tolerance: stop once |λ_i − λ_{i−1}| < tolerance·(|λ_{i−1}| + 1e-6) (PyHessian's rule).
            seed: seed of the random starting vector.
        """
        super().__init__(every_n_steps)
        check_values("hessian.", {"iterations": integer(1), "tolerance": finite_number(at_least=0)},
                     {"iterations": iterations, "tolerance": tolerance})
        self.iterations, self.tolerance, self.seed = iterations, float(tolerance), seed

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "iterations": self.iterations, "tolerance": self.tolerance}

    def measure(self, trainer: Trainer, pl_module: LightningModule, batch, optimizer: torch.optim.Optimizer,
                snapshot: TrainingSnapshot, batch_rng: dict[str, Any]) -> dict[str, float]:
        params = [p for p in pl_module.parameters() if p.requires_grad]
        loss = probe_loss(pl_module, batch, batch_rng)
        grads = torch.autograd.grad(loss, params, create_graph=True, materialize_grads=True)
        generator = torch.Generator(device=params[0].device).manual_seed(self.seed)
        v = [torch.randn(p.shape, generator=generator, device=p.device, dtype=p.dtype) for p in params]
        eigenvalue, used = None, 0
        for used in range(1, self.iterations + 1):
            norm = flat_norm(v)
            v = [vi / norm for vi in v]
            # A gradient that does not depend on θ (constant in θ) contributes a zero row of H.
            rows = [i for i, gi in enumerate(grads) if gi.requires_grad]
            hv = torch.autograd.grad([grads[i] for i in rows], params, grad_outputs=[v[i] for i in rows],
                                     retain_graph=True, materialize_grads=True)
            estimate = float(sum((h * vi).sum() for h, vi in zip(hv, v)))
            converged = (eigenvalue is not None
                         and abs(estimate - eigenvalue) < self.tolerance * (abs(eigenvalue) + 1e-6))
            eigenvalue, v = estimate, [h.detach() for h in hv]
            if converged:
                break
        return {"top_eig": eigenvalue, "iterations": float(used)}
