"""Models with known losses and recorders for the analysis-callback tests (landscape, Hessian).

The models implement `compute_loss(batch) -> (loss, output)` like `ImageClassifier`, so the probes
call them exactly as they call the real classifier. `StateRecorder` copies everything a probe
must leave alone, at `on_before_optimizer_step`; placed before and after a probe in the callback
list it sees the state the probe found and the state it left.
"""
from __future__ import annotations

import copy
import random
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.loggers import Logger, WandbLogger
from torch import nn
from torch.func import functional_call
from torch.utils.data import DataLoader, TensorDataset

STEP_SIZES = (0.05, 0.1, 0.2, 0.3, 0.4)


class QuadraticModel(LightningModule):
    """L(θ) = ½ θᵀAθ whatever the batch, in float64."""

    def __init__(self, A: torch.Tensor, theta0: torch.Tensor, lr: float = 0.05):
        super().__init__()
        self.register_buffer("A", A.double())
        self.theta = nn.Parameter(theta0.double().clone())
        self.lr = lr

    def compute_loss(self, batch):
        return 0.5 * self.theta @ self.A @ self.theta, self.theta

    def training_step(self, batch, batch_idx):
        return self.compute_loss(batch)[0]

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class LinearSoftmax(LightningModule):
    """Multinomial logistic regression, optionally with a BatchNorm1d and dropout on the input."""

    def __init__(self, features: int = 6, classes: int = 4, batch_norm: bool = False, dropout: float = 0.0,
                 optimizer: str = "sgd", lr: float = 0.1):
        super().__init__()
        self.norm = nn.BatchNorm1d(features) if batch_norm else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(features, classes)
        self.optimizer_name, self.lr = optimizer, lr

    def forward(self, x):
        return self.linear(self.dropout(self.norm(x)))

    def compute_loss(self, batch):
        x, y = batch
        logits = self(x)
        return F.cross_entropy(logits, y), logits

    def training_step(self, batch, batch_idx):
        loss = self.compute_loss(batch)[0]
        # One more draw after the forward (as a stochastic regularizer would make): the probes replay
        # the forward's RNG state, so only their final restore keeps this draw from being rewound.
        torch.rand(1)
        return loss

    def configure_optimizers(self):
        if self.optimizer_name == "adam":
            return torch.optim.Adam(self.parameters(), lr=self.lr)
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


def classification_loader(n: int = 64, features: int = 6, classes: int = 4, batch_size: int = 16,
                          seed: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=generator) * 2 + 1
    y = torch.randint(0, classes, (n,), generator=generator)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True)


class MetricsCapture(Logger):
    """Keeps every `log_metrics` call: rows[step] = {key: value}."""

    def __init__(self):
        super().__init__()
        self.rows: dict[int, dict[str, float]] = {}
        self.hyperparams: dict = {}

    @property
    def name(self):
        return "capture"

    @property
    def version(self):
        return 0

    def log_hyperparams(self, params, *args, **kwargs):
        self.hyperparams.update(params)

    def log_metrics(self, metrics, step=None):
        self.rows.setdefault(step, {}).update(metrics)

    def with_prefix(self, prefix: str) -> dict[int, dict[str, float]]:
        return {step: {k: v for k, v in row.items() if k.startswith(prefix)}
                for step, row in self.rows.items() if any(k.startswith(prefix) for k in row)}


class WandbCapture(WandbLogger):
    """A W&B logger that keeps what it is given (`rows` like `MetricsCapture`, `logged`: what goes to the run
    directly) and starts no W&B process: the callbacks' W&B-only output, read back in the test."""

    def __init__(self):
        super().__init__(offline=True)
        self.rows: dict[int, dict] = {}
        self.logged: list[dict] = []

    @property
    def experiment(self):
        return SimpleNamespace(log=self.logged.append)

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def log_metrics(self, metrics, step=None):
        self.rows.setdefault(step, {}).update(metrics)

    def finalize(self, status):
        pass


class StateRecorder(Callback):
    """At every `on_before_optimizer_step`: parameters, grads, buffers, optimizer state, RNG, and the
    batch with the torch RNG state at its start (the training forward's dropout masks come from it)."""

    def __init__(self):
        self.states: dict[int, dict] = {}
        self._batch, self._batch_rng = None, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._batch, self._batch_rng = batch, torch.get_rng_state()

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.states[trainer.global_step] = {
            "params": {n: p.detach().clone() for n, p in pl_module.named_parameters()},
            "grads": {n: None if p.grad is None else p.grad.clone() for n, p in pl_module.named_parameters()},
            "buffers": {n: b.clone() for n, b in pl_module.named_buffers()},
            "optimizer": copy.deepcopy(optimizer.state_dict()),
            "rng": (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()),
            "batch": self._batch,
            "batch_rng": self._batch_rng,
        }


def fit(model: LightningModule, callbacks: list[Callback], loader: DataLoader, max_steps: int,
        **trainer_options) -> MetricsCapture:
    capture = MetricsCapture()
    options = dict(accelerator="cpu", devices=1, max_steps=max_steps, logger=[capture],
                   enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                   num_sanity_val_steps=0, log_every_n_steps=1000)
    Trainer(callbacks=callbacks, **{**options, **trainer_options}).fit(model, loader)
    return capture


def assert_same_state(before: dict, after: dict) -> None:
    """Bit equality of everything `StateRecorder` keeps (the batch aside)."""
    for kind in ("params", "grads", "buffers"):
        assert before[kind].keys() == after[kind].keys()
        for name, value in before[kind].items():
            other = after[kind][name]
            assert (value is None) == (other is None), (kind, name)
            if value is not None:
                assert torch.equal(value, other), (kind, name)
    assert_equal_nested(before["optimizer"], after["optimizer"])
    assert torch.equal(before["rng"][0], after["rng"][0])
    assert np.array_equal(before["rng"][1], after["rng"][1]) and before["rng"][2] == after["rng"][2]


def assert_equal_nested(a, b) -> None:
    if torch.is_tensor(a):
        assert torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_equal_nested(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_equal_nested(x, y)
    else:
        assert a == b


def reference_values(model, state, direction: str, exclude_norm: bool, lr: float):
    """`LandscapeProbe`'s numbers computed directly from a `StateRecorder` state: functional_call on a
    copy at θ − η·d. Returns (losses [L(θ), L(θ_k)...], grad_pred per η, ratio to ‖θ_k − θ‖ per η)."""
    model = copy.deepcopy(model).train()
    model.load_state_dict({**state["params"], **state["buffers"]})
    x, y = state["batch"]
    moved = [n for n in state["params"] if not (exclude_norm and n.startswith("norm."))]
    theta = {n: state["params"][n].clone().requires_grad_(True) for n in moved}

    def loss_and_grad(params):
        torch.set_rng_state(state["batch_rng"])  # dropout: the training step's mask at every θ
        out = functional_call(model, {**state["params"], **params}, (x,))
        loss = F.cross_entropy(out, y)
        return float(loss), torch.autograd.grad(loss, list(params.values()))

    loss0, g = loss_and_grad(theta)
    if direction == "update":  # what a fresh torch Adam loaded with the recorded state makes of θ
        twin = copy.deepcopy(model)
        adam = torch.optim.Adam(twin.parameters(), lr=lr)
        adam.load_state_dict(state["optimizer"])
        named = dict(twin.named_parameters())
        for n, gn in zip(moved, g):
            named[n].grad = gn.clone()
        adam.step()
        d = [(state["params"][n] - named[n].detach()) / lr for n in moved]
    else:
        d = g
    losses, preds, betas = [loss0], [], []
    for eta in STEP_SIZES:
        at = {n: (theta[n] - eta * dn).detach().requires_grad_(True) for n, dn in zip(moved, d)}
        loss_k, grad_k = loss_and_grad(at)
        pred = float(torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(grad_k, g))))
        dist = float(torch.sqrt(sum(((at[n] - theta[n]) ** 2).sum() for n in moved)))
        losses.append(loss_k)
        preds.append(pred)
        betas.append(pred / dist)
    return losses, preds, betas
