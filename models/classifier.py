"""`ImageClassifier`: the one LightningModule of normlab.

A backbone (by name) whose every normalization layer comes from the norm factory, trained with
cross-entropy. Every knob of the optimization is a plain argument here, so a YAML file or a sweep
can set it, and the parameter groups in `models.optim` keep weight decay off γ, β and λ.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pytorch_lightning import LightningModule
from torchmetrics.classification import MulticlassAccuracy

from models.backbones import backbone_norm_shapes, build_backbone
from models.logging_steps import is_logging_step
from models.norms import norm_names, uses_batch_statistics
from models.norms.statistics import check_norm_inputs
from models.option_ranges import check_model_options
from models.optim import (OptimizerName, ScheduleName, build_optimizer, limit_lambda_step, lr_multiplier,
                          parameter_groups)


class ImageClassifier(LightningModule):
    def __init__(
        self,
        backbone: str = "small_cnn",
        norm: str = "bn",
        norm_groups: int = 32,
        norm_options: dict | None = None,
        backbone_options: dict | None = None,
        num_classes: int = 10,
        in_channels: int = 3,
        image_size: int = 32,
        optimizer: OptimizerName = "sgd",
        lr: float = 0.1,
        momentum: float = 0.9,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        norm_weight_decay: bool = False,
        lambda_lr_scale: float = 1.0,
        lambda_max_step: float | None = None,
        schedule: ScheduleName = "constant",
        milestones: list[int] | None = None,
        gamma: float = 0.1,
        step_size: int = 30,
        warmup_epochs: float = 0.0,
        channels_last: bool = False,
        compile: bool = False,
        fused_optimizer: bool | None = None,
    ):
        """
        Args:
            backbone: small_cnn | vgg11 | resnet18 | resnet50 | densenet121.
            norm: a name from `models.norms.norm_names()` (bn, gn, gn_plus_gn_first, ...).
            norm_groups: G for the group-based norms (GN paper: 32).
            norm_options: extra options for the norm layers (e.g. lambda_init, eps).
            backbone_options: extra options for the backbone (e.g. head: mlp for vgg11).
            num_classes, in_channels, image_size: linked from the data module by the CLI.
            optimizer: sgd (with `momentum`) | adam | adamw (with `betas`).
            lr: base learning rate (> 0).
            weight_decay: L2 on conv/linear weights and biases.
            norm_weight_decay: also decay the norm layers' γ, β (λ is never decayed).
            lambda_lr_scale: the GNPlus λ parameters' LR as a multiple of `lr`.
            lambda_max_step: clamp each GNPlus λ's change per optimizer step to ± this (None: no limit).
            schedule: constant | step | multistep | cosine | onecycle, stepped every batch.
            milestones: epochs at which `multistep` multiplies the LR by `gamma`.
            step_size: every `step_size` epochs `step` multiplies the LR by `gamma`.
            warmup_epochs: linear warm-up length (not used by onecycle, which has its own).
            channels_last: NHWC memory format for weights and inputs (faster convolutions on GPUs).
            compile: run the backbone through `torch.compile` (the module and its state dict stay
                uncompiled, so checkpoints load either way).
            fused_optimizer: the fused optimizer kernels; None = on when training on CUDA.
        """
        super().__init__()
        check_model_options(lr=lr, momentum=momentum, betas=betas, weight_decay=weight_decay,
                            lambda_lr_scale=lambda_lr_scale, lambda_max_step=lambda_max_step, gamma=gamma,
                            step_size=step_size, milestones=milestones, warmup_epochs=warmup_epochs,
                            norm_groups=norm_groups, num_classes=num_classes, in_channels=in_channels,
                            image_size=image_size)
        self.save_hyperparameters()
        self.net = build_backbone(backbone, num_classes, in_channels, norm, norm_groups, image_size=image_size,
                                  backbone_options=backbone_options, **(norm_options or {}))
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        # Kept out of the module tree (not registered) so state dicts have no `_orig_mod.` keys.
        self.__dict__["_forward_net"] = torch.compile(self.net) if compile else self.net
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")

    def check_batch_size(self, per_device: int, source: str) -> None:
        """Refuse, before training, a per-device batch of `per_device` images that the norm layers cannot
        normalize in training; `source` names the setting it comes from (e.g. "data.batch_size=8")."""
        hp = self.hparams
        if per_device == 1 and uses_batch_statistics(hp.norm, hp.norm_options):
            one_image = ", ".join(n for n in norm_names() if not uses_batch_statistics(n))
            raise ValueError(f"{source} leaves 1 image per device, but model.norm={hp.norm!r} normalizes with "
                             "batch statistics in training; use a batch of >= 2 per device, or a norm that "
                             f"trains on one image: {one_image}")
        shapes = backbone_norm_shapes(hp.backbone, hp.in_channels, hp.image_size, per_device, hp.backbone_options)
        check_norm_inputs(self.net, hp.norm, shapes, source)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self._forward_net(x)

    def compute_loss(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The training loss of a (normalized) batch and the logits: the one definition that
        `training_step` and the analysis callbacks (landscape, Hessian) evaluate."""
        x, y = batch
        logits = self(x)
        return F.cross_entropy(logits, y), logits

    def training_step(self, batch, batch_idx):
        loss, logits = self.compute_loss(batch)
        self.train_acc.update(logits, batch[1])  # counts only: the per-batch accuracy is never logged
        self._step_loss = loss.detach()
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        # Logged on the steps Lightning writes only (models/logging_steps.py): the same rows, far cheaper.
        if is_logging_step(self.trainer):
            self.log("train/loss", self._step_loss, on_step=True, on_epoch=False, prog_bar=True)

    def on_train_epoch_end(self):
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)

    def _evaluate(self, batch, stage: str, metric: MulticlassAccuracy):
        x, y = batch
        logits = self(x)
        metric(logits, y)
        self.log(f"{stage}/loss", F.cross_entropy(logits, y), on_epoch=True, sync_dist=True)
        self.log(f"{stage}/acc", metric, on_epoch=True, prog_bar=True)

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, "val", self.val_acc)

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, "test", self.test_acc)

    def predict_step(self, batch, batch_idx):
        """`lightning predict`: the predicted class of every image, beside its label."""
        x, y = batch
        return {"prediction": self(x).argmax(dim=1), "label": y}

    def optimizer_step(self, *args, **kwargs):
        with limit_lambda_step(self.net, self.hparams.lambda_max_step):
            super().optimizer_step(*args, **kwargs)

    def configure_optimizers(self):
        hp = self.hparams
        groups = parameter_groups(self.net, hp.weight_decay, hp.norm_weight_decay, hp.lambda_lr_scale, hp.lr)
        fused = hp.fused_optimizer if hp.fused_optimizer is not None else self.device.type == "cuda"
        optimizer = build_optimizer(hp.optimizer, groups, hp.lr, hp.momentum, tuple(hp.betas), fused=fused)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        batches = self.trainer.num_training_batches  # known once estimated_stepping_batches ran
        # An epoch's last batch steps the optimizer even when its accumulation window is short.
        per_epoch = math.ceil(batches / self.trainer.accumulate_grad_batches) if math.isfinite(batches) else total
        factor = lr_multiplier(hp.schedule, total, per_epoch, list(hp.milestones or []), hp.gamma, hp.step_size,
                               int(hp.warmup_epochs * per_epoch))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
