"""The data modules inside real Trainers: a run stopped mid-epoch and resumed from its checkpoint sees
exactly the batches of an uninterrupted run, and under DDP (2 CPU processes, gloo) each rank trains on
its half of every single-device batch, augmentation included."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pytorch_lightning import Callback, Trainer, seed_everything
from pytorch_lightning.callbacks import ModelCheckpoint

from datamodules import CIFAR10DataModule
from models.classifier import ImageClassifier
from tests.fakedata import write_fake_cifar
from tests.helpers import ROOT


class RecordBatches(Callback):
    """Writes what every training step received (rank, epoch, labels, per-image sums) to a JSON-lines file."""

    def __init__(self, path: str):
        self.path = path

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        with open(self.path, "a") as file:
            file.write(json.dumps([trainer.global_rank, trainer.current_epoch, batch[1].tolist(),
                                   batch[0].sum(dim=(1, 2, 3)).tolist()]) + "\n")


def fit(data_dir, record, devices=1, on_device=False, ckpt_path=None, **trainer_options):
    """The training every test here runs: 52 images, 4 held out, batch 16 (3 steps an epoch), 3 epochs."""
    seed_everything(0)
    dm = CIFAR10DataModule(data_dir=str(data_dir), batch_size=16, val_split=4, download=False,
                           on_device=on_device)
    model = ImageClassifier(backbone="small_cnn", norm="gn", norm_groups=4, num_classes=10, in_channels=3,
                            image_size=32)
    options = dict(max_epochs=3, logger=False, enable_progress_bar=False, enable_model_summary=False,
                   accelerator="cpu", num_sanity_val_steps=0, limit_val_batches=0, enable_checkpointing=False)
    options.update(trainer_options)
    options["callbacks"] = [RecordBatches(str(record)), *options.get("callbacks", [])]
    trainer = Trainer(devices=devices, strategy="ddp" if devices > 1 else "auto", **options)
    trainer.fit(model, dm, ckpt_path=ckpt_path)


def read(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


# Lightning warns that a mid-epoch resume is unreliable unless the *loader* is stateful; the data module
# restores its place itself (what this test checks), and `lightning fit` silences the warning for it.
@pytest.mark.filterwarnings("ignore:You're resuming from a checkpoint that ended before the epoch")
def test_resuming_mid_epoch_continues_with_exactly_the_next_batch(tmp_path):
    write_fake_cifar(tmp_path, 10, n_train=52, n_test=8)
    fit(tmp_path, tmp_path / "full.jsonl")
    checkpoint = ModelCheckpoint(dirpath=str(tmp_path / "ck"), every_n_train_steps=4, save_top_k=-1)
    fit(tmp_path, tmp_path / "resumed.jsonl", max_steps=4, callbacks=[checkpoint], enable_checkpointing=True)
    (path,) = (tmp_path / "ck").glob("*.ckpt")  # saved after step 4: epoch 1, batch 1 done
    assert torch.load(path, weights_only=False)["CIFAR10DataModule"] == {"epoch": 1, "batches_done": 1}
    fit(tmp_path, tmp_path / "resumed.jsonl", ckpt_path=str(path), callbacks=[checkpoint],
        enable_checkpointing=True)
    full, resumed = read(tmp_path / "full.jsonl"), read(tmp_path / "resumed.jsonl")
    assert len(full) == 9 and resumed == full


@pytest.mark.slow
@pytest.mark.parametrize("on_device", [False, True])
def test_ddp_ranks_train_on_the_halves_of_the_single_device_batches(tmp_path, on_device):
    write_fake_cifar(tmp_path, 10, n_train=52, n_test=8)
    fit(tmp_path, tmp_path / "single.jsonl", on_device=on_device)
    # Lightning's DDP launcher re-runs the main script in each process: give it one (a file, not -c)
    script = tmp_path / "ddp_fit.py"
    script.write_text("from pathlib import Path\nfrom tests.datamodules.test_lightning_integration import fit\n"
                      f"fit(Path({str(tmp_path)!r}), Path({str(tmp_path / 'ddp.jsonl')!r}), devices=2, "
                      f"on_device={on_device})\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, check=True, timeout=300, capture_output=True)
    single, ddp = read(tmp_path / "single.jsonl"), read(tmp_path / "ddp.jsonl")
    ranks = [[step for step in ddp if step[0] == rank] for rank in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == len(single) == 9
    for step, half0, half1 in zip(single, *ranks):
        assert len(half0[2]) == len(half1[2]) == 8  # batch 16 over 2 devices
        assert half0[2] + half1[2] == step[2] and half0[1] == half1[1] == step[1]
        torch.testing.assert_close(torch.tensor(half0[3] + half1[3]), torch.tensor(step[3]))
