"""A plain PyTorch training loop: what `lightning fit` is measured against (bench/fit_process.py).

    python -m bench.plain_loop --batch 4 --steps 3000 [--losses FILE]

The work of `lightning fit --config configs/quickstart.yaml --model.norm bn` with validation and the
final test off, and nothing else: the same network (built by the same function after the same
seed), the same batches in the same order with the same normalization (the data module's sampler
and transfer hook), Adam with the same parameter groups and one-cycle schedule (models/optim.py),
cross-entropy, and the training accuracy counted on the device. No Trainer, callbacks or logger.
`--losses` writes the loss of every `LOG_EVERY`-th step (the steps `metrics.csv` has), so the
benchmark can check that both processes trained the very same way.
"""
from __future__ import annotations

import argparse
import json
import random

import numpy as np
import torch
import torch.nn.functional as F

from datamodules.mnist import FashionMNISTDataModule
from models.backbones import build_backbone
from models.optim import build_optimizer, lr_multiplier, parameter_groups

SEED, LR, LOG_EVERY = 0, 0.003, 20  # configs/quickstart.yaml: seed_everything, model.lr, log_every_n_steps


def train(batch_size: int, steps: int) -> tuple[dict[int, float], float]:
    """Train `steps` steps; returns {step: loss} of every LOG_EVERY-th step and the training accuracy."""
    random.seed(SEED)  # what LightningCLI's seed_everything does before it builds the model
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    data = FashionMNISTDataModule(batch_size=batch_size)
    data.setup("fit")
    net = build_backbone("small_cnn", num_classes=10, in_channels=1, norm="bn", norm_groups=4, image_size=28)
    optimizer = build_optimizer("adam", parameter_groups(net, 0.0, False, 1.0, LR), LR, 0.9, (0.9, 0.999))
    loader = data.train_dataloader()
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier("onecycle", steps, len(loader), [], 0.1,
                                                                          30, 0))
    correct, losses, step, epoch = torch.zeros((), dtype=torch.int64), {}, 0, 0
    net.train()
    while step < steps:
        loader.sampler.set_epoch(epoch)
        for batch in loader:
            x, y = data.on_after_batch_transfer(batch, 0)
            logits = net(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            correct += (logits.argmax(1) == y).sum()
            if (step + 1) % LOG_EVERY == 0:
                losses[step] = float(loss.detach())
            step += 1
            if step == steps:
                break
        epoch += 1
    return losses, float(correct) / (steps * batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--losses", help="write {step: loss} of every LOG_EVERY-th step to this JSON file")
    args = parser.parse_args()
    losses, accuracy = train(args.batch, args.steps)
    if args.losses:
        with open(args.losses, "w") as file:
            json.dump({"losses": losses, "train_acc": accuracy}, file)


if __name__ == "__main__":
    main()
