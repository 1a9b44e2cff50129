"""Cost of `callbacks.lambda_tracker.LambdaTracker` against a training step of the small CNN with GNPlus
layers (gn_plus_gn_first, batch 128 of 1×28×28): one logged step of the tracker (stack the λ scalars,
one device→host copy, log to a CSV logger) and one optimizer step (forward, backward, Adam), interleaved
(bench/timing.py). A whole-fit comparison drowns in the noise of a shared machine; this isolates the
tracker's own work, which the fit pays once every `every_n_steps` steps.
"""
from __future__ import annotations

import tempfile

import torch
import torch.nn.functional as F
from pytorch_lightning import Trainer
from pytorch_lightning.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from bench.timing import interleaved_medians
from callbacks.lambda_tracker import LambdaTracker
from models.classifier import ImageClassifier

BATCH = 128


def run() -> list[dict]:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    x, y = torch.randn(BATCH, 1, 28, 28), torch.randint(0, 10, (BATCH,))
    model = ImageClassifier(backbone="small_cnn", norm="gn_plus_gn_first", norm_groups=4, num_classes=10,
                            in_channels=1, image_size=28, optimizer="adam", lr=0.003)
    tracker = LambdaTracker(every_n_steps=10)
    trainer = Trainer(max_steps=1, accelerator=device, devices=1, logger=CSVLogger(tempfile.mkdtemp()),
                      callbacks=[tracker], enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False)
    trainer.fit(model, DataLoader(TensorDataset(x, y), batch_size=BATCH))  # sets the tracker up on its model
    model.to(device)
    x, y = x.to(device), y.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.003)

    def train_step():
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    def logged_step():
        tracker._last_logged_step = -1  # log again at the same step
        tracker._log(trainer)

    medians = interleaved_medians({"train step": train_step, "tracker, one logged step": logged_step},
                                  repeats=30, warmup=3, device=device)
    step = medians["train step"]
    return [{"case": name, "ms": round(1000 * seconds, 3), "ratio_to_train_step": round(seconds / step, 6)}
            for name, seconds in medians.items()]
