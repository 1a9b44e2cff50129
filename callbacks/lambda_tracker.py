"""`LambdaTracker`: logs σ(λ) of every GNPlus layer over training ("Understanding and Improving Group
Normalization", §4: s = σ(λ) is the weight on the GN output, 1 − s the weight on the BN part).

Keys (to every logger): `lambda/<module path>` = σ(λ); with `log_raw`, `lambda_raw/<module path>` = λ;
with `log_grad_norm`, `lambda_grad/<module path>` = |∂L/∂λ| of the latest optimizer step (λ is a
scalar, so its gradient norm is the absolute value). Logged at step 0, every `every_n_steps` optimizer
steps and at each training epoch end. The final σ(λ) per layer goes into `summary.json` as `lambdas`.
With a W&B logger, the end of fit also logs a table (step, layer, σ(λ)) and a line-series chart that
overlays all layers.

Cost: one stack of the scalars and one device→host copy per logged step (never a `.item()` per layer).
Under DDP every rank holds the same λ (gradients are all-reduced), so only rank 0 reads and logs.
"""
from __future__ import annotations

import math

import torch
from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.loggers import WandbLogger

from callbacks.run_summary import RunSummary
from models.norms import GNPlus
from value_ranges import integer

PREFIXES = {"sigma": "lambda/", "raw": "lambda_raw/", "grad": "lambda_grad/"}


def gnplus_layers(module: torch.nn.Module) -> dict[str, GNPlus]:
    """Every GNPlus layer of `module`, by module path (`net.features.1`)."""
    return {name: layer for name, layer in module.named_modules() if isinstance(layer, GNPlus)}


class LambdaTracker(Callback):
    def __init__(self, every_n_steps: int = 10, log_raw: bool = False, log_grad_norm: bool = False):
        """
        Args:
            every_n_steps: log every this many optimizer steps (also at step 0 and each epoch end).
            log_raw: also log the raw parameter λ.
            log_grad_norm: also log |∂L/∂λ| of the latest optimizer step.
        """
        integer(1).check("lambda_tracker.every_n_steps", every_n_steps)
        self.every_n_steps, self.log_raw, self.log_grad_norm = every_n_steps, log_raw, log_grad_norm
        self._layers: dict[str, GNPlus] = {}
        self._grad: torch.Tensor | None = None  # |∂L/∂λ| per layer, of the latest optimizer step
        self._last_logged_step = -1
        self._last_logged_epoch = 0  # the epoch that row carried: a resume logs it again as it was
        # (step, σ(λ) per layer) of every logged step: the W&B table, kept across a resume
        self.history: list[tuple[int, list[float]]] = []

    # -- hooks -------------------------------------------------------------------------------------
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._layers = gnplus_layers(pl_module)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.global_step == 0:
            self._log(trainer)  # the initial value, so every trajectory starts at σ(λ_init)
        elif trainer.global_step == self._last_logged_step:
            # Resumed from a checkpoint of a step this tracker had logged: the metrics file keeps the
            # earlier rows only up to the resumed run's first row, so that row is logged again (the same
            # values: λ comes back from the checkpoint) instead of being lost.
            self._last_logged_step = -1
            self._log(trainer, epoch=self._last_logged_epoch)  # an epoch-end row keeps its epoch

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer) -> None:
        if self.log_grad_norm and self._layers and trainer.is_global_zero:
            self._grad = torch.stack([layer.lambda_.grad.detach() if layer.lambda_.grad is not None
                                      else torch.zeros_like(layer.lambda_) for layer in self._layers.values()]).abs()

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self._log(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log(trainer)
        self._record_summary(trainer)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._record_summary(trainer)
        if trainer.is_global_zero and self.history:
            for logger in trainer.loggers:
                if isinstance(logger, WandbLogger):
                    self._log_wandb_chart(logger)

    def state_dict(self) -> dict:
        return {"history": self.history, "last_logged_step": self._last_logged_step,
                "last_logged_epoch": self._last_logged_epoch}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = [(int(step), list(values)) for step, values in state_dict.get("history", [])]
        self._last_logged_step = state_dict.get("last_logged_step", -1)
        self._last_logged_epoch = state_dict.get("last_logged_epoch", 0)

    # -- internals ---------------------------------------------------------------------------------
    def _log(self, trainer: Trainer, epoch: int | None = None) -> None:
        step = trainer.global_step
        if not self._layers or not trainer.is_global_zero or step == self._last_logged_step:
            return
        raw = torch.stack([layer.lambda_.detach() for layer in self._layers.values()]).float()
        rows = {"sigma": torch.sigmoid(raw)}
        if self.log_raw:
            rows["raw"] = raw
        if self.log_grad_norm and self._grad is not None:
            rows["grad"] = self._grad.float()
        values = torch.stack(list(rows.values())).cpu().tolist()  # the one device→host copy
        metrics = {f"{PREFIXES[kind]}{name}": value
                   for kind, row in zip(rows, values) for name, value in zip(self._layers, row)}
        epoch = trainer.current_epoch if epoch is None else epoch
        metrics["epoch"] = epoch  # as Lightning's own rows carry it
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
        if not self.history or self.history[-1][0] != step:  # a resume logs its first step again
            self.history.append((step, values[0]))
        self._last_logged_step, self._last_logged_epoch = step, epoch

    def _record_summary(self, trainer: Trainer) -> None:
        summary = RunSummary.find(trainer)
        if summary is None or not self._layers:
            return
        sigma = torch.sigmoid(torch.stack([layer.lambda_.detach() for layer in self._layers.values()]).float())
        lambdas = {name: (value if math.isfinite(value) else None)
                   for name, value in zip(self._layers, sigma.cpu().tolist())}
        summary.update(trainer, lambdas=lambdas)

    def _log_wandb_chart(self, logger: WandbLogger) -> None:
        """One table (step, layer, σ(λ)) and one line-series chart overlaying every layer."""
        import wandb  # only when a W&B logger is in use

        names = list(self._layers)
        steps = [step for step, _ in self.history]
        table = wandb.Table(columns=["step", "layer", "sigma_lambda"],
                            data=[[step, name, value] for step, values in self.history
                                  for name, value in zip(names, values)])
        chart = wandb.plot.line_series(xs=steps, ys=[[values[i] for _, values in self.history]
                                                     for i in range(len(names))],
                                       keys=names, title="σ(λ) per GNPlus layer", xname="step")
        logger.experiment.log({"lambda_trajectories/table": table, "lambda_trajectories/chart": chart})
