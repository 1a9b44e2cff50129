"""W&B beside the CSV logger, offline (no network here): `lightning fit` with the wandb preset writes an
offline W&B run whose records (read back from the binary `.wandb` file) hold the λ and landscape keys,
the activation histograms (the counts and edges of activation_histograms.jsonl), the resolved config
with the git commit, and the derived project/group/tags/id; the id is stable."""
import hashlib
import json
import re
import struct
import subprocess
import time
from pathlib import Path

import pytest
import torch
from pytorch_lightning import Callback

from callbacks.activation_records import HISTOGRAM_FILE, bin_edges, read_histograms
from lightning_app.command import main
from lightning_app.wandb_logger import WandbOptions, run_identity
from tests.helpers import ROOT, run_dirs, tiny_args

LANDSCAPE = {"landscape/loss_min": 0.5, "landscape/loss_max": 2.5, "landscape/grad_pred_min": 0.1,
             "landscape/grad_pred_max": 0.9, "landscape/beta_eff": 3.0, "landscape/loss@0.5": 1.25}


class LogsLandscapeKeys(Callback):
    """Logs the landscape probe's keys (design.md) to every logger, as the probe does, with known values."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == 4:
            for logger in trainer.loggers:
                logger.log_metrics(LANDSCAPE, step=trainer.global_step)


def wandb_records(path: Path):
    """The protobuf records of a `.wandb` file: a 7-byte header (":W&B", magic, version), then the
    LevelDB log format (32 KiB blocks; records of 7-byte header + payload, FULL/FIRST/MIDDLE/LAST)."""
    from wandb.proto import wandb_internal_pb2

    data, block, pos, pending = path.read_bytes(), 32768, 7, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST: a whole record
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def wait_for_exit_record(path: Path, timeout: float = 30.0) -> list:
    """wandb-core writes the file from its own process: read it once its closing `exit` record is there."""
    deadline = time.monotonic() + timeout
    while True:
        records = list(wandb_records(path))
        if (records and records[-1].HasField("exit")) or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def items(updates) -> dict:
    return {u.key or "/".join(u.nested_key): json.loads(u.value_json) for u in updates}


def test_quickstart_with_the_wandb_preset_writes_an_offline_run(fake_mnist_dir, tmp_path):
    import wandb

    main(tiny_args(fake_mnist_dir, tmp_path, "--config", str(ROOT / "configs/presets/wandb.yaml"),
                   "--config", str(ROOT / "configs/presets/lambda.yaml"), "--lambda_tracker.every_n_steps", "2",
                   "--model.norm", "gn_plus_gn_first", "--wandb.tags", "[study]", "--trainer.max_epochs", "1",
                   "--trainer.callbacks+", "tests.lightning_app.test_wandb_offline.LogsLandscapeKeys",
                   "--config", str(ROOT / "configs/presets/activations.yaml"), "--activation_stats.every_n_steps", "4"))
    assert wandb.run is None  # finished, not left open for the next fit in this process
    (run_dir,) = run_dirs(tmp_path)
    (wandb_file,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    records = wait_for_exit_record(wandb_file)
    kinds = [r.WhichOneof("record_type") for r in records]
    assert kinds.count("run") == 1 and kinds[-1] == "exit"

    run = next(r.run for r in records if r.HasField("run"))
    assert run.run_id == hashlib.sha1(f"quickstart/{run_dir.name}".encode()).hexdigest()[:16]
    assert run.display_name == run_dir.name and run.project == "normlab-fashion_mnist"
    # the group: the run name with the seed as s* (and a hash of the config without the seed)
    assert re.fullmatch(r"fashion_mnist_small_cnn_gn_plus_gn_first_g4_bs32_lr0\.003_s\*_[0-9a-f]{6}", run.run_group)
    assert list(run.tags) == ["fashion_mnist", "small_cnn", "gn_plus_gn_first", "bs32", "lr0.003", "seed0",
                              "quickstart", "study"]
    config = items(run.config.update)
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert config["git"]["commit"] == head
    assert config["model"]["norm"] == "gn_plus_gn_first" and config["data"]["init_args"]["batch_size"] == 32
    assert config["run_name"] == run_dir.name and config["run_dir"] == str(run_dir)

    history = [items(r.history.item) for r in records if r.HasField("history")]
    layers = ("net.features.1", "net.features.5")
    lambda_rows = {row["trainer/global_step"]: row for row in history if f"lambda/{layers[0]}" in row}
    assert sorted(lambda_rows) == [0, 2, 4, 6]  # 6 steps in the one epoch
    last = torch.load(run_dir / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    for layer in layers:  # the last logged σ(λ) is σ of the λ saved in the checkpoint
        assert lambda_rows[6][f"lambda/{layer}"] == pytest.approx(torch.sigmoid(last[f"{layer}.lambda_"]).item())
    (landscape,) = [row for row in history if "landscape/loss_min" in row]
    assert {key: landscape[key] for key in LANDSCAPE} == LANDSCAPE and landscape["trainer/global_step"] == 4
    histograms = read_histograms(run_dir / HISTOGRAM_FILE)
    assert len(histograms) == 2 * 2 * 3 * 2  # steps 0, 4 × layers × channels × before/after
    activation_rows = {row["trainer/global_step"]: row for row in history if "activation/net.features.1/mean@0" in row}
    assert sorted(activation_rows) == [0, 4]
    for record in histograms:
        row = activation_rows[record["step"]]
        key = f"activation_hist/{record['layer']}/{record['where']}@{record['channel']}"
        assert row[f"{key}/_type"] == "histogram" and row[f"{key}/values"] == record["counts"]
        assert row[f"{key}/bins"] == bin_edges(60, (-6, 6)).tolist()
    summary = json.loads((run_dir / "summary.json").read_text())
    (test_row,) = [row for row in history if "test/acc" in row]
    assert test_row["test/acc"] == pytest.approx(summary["test_acc"])
    final = {}
    for record in records:
        if record.HasField("summary"):
            final.update(items(record.summary.update))
    assert final["run/status"] == "completed" and final["run/test_acc"] == pytest.approx(summary["test_acc"])
    assert final["lambda_trajectories/table/nrows"] == 4 * 2  # one (step, layer, σ(λ)) row per logged value
    assert final["lambda_trajectories/chart_table/_type"] == "table-file"
    table = json.loads((wandb_file.parent / "files" / final["lambda_trajectories/table/path"]).read_text())
    assert table["columns"] == ["step", "layer", "sigma_lambda"]
    assert table["data"] == [[step, layer, pytest.approx(row[f"lambda/{layer}"])]
                             for step, row in sorted(lambda_rows.items()) for layer in layers]
    header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")  # the CSV logger stays on
    assert {f"lambda/{layer}" for layer in layers} | set(LANDSCAPE) <= set(header)


def test_the_run_id_is_stable_and_seeds_share_a_group():
    def config(seed=0, batch_size=128, norm="gn"):
        return {"seed_everything": seed, "model": {"backbone": "small_cnn", "norm": norm, "norm_groups": 4, "lr": 0.1},
                "data": {"class_path": "datamodules.FashionMNISTDataModule", "init_args": {"batch_size": batch_size}}}

    options = WandbOptions()
    first = run_identity(config(), "exp", "run_a", options)
    assert first == run_identity(config(), "exp", "run_a", options)  # a relaunch (resume, requeue) finds it
    assert first["id"] == hashlib.sha1(b"exp/run_a").hexdigest()[:16]
    assert run_identity(config(), "other_exp", "run_a", options)["id"] != first["id"]
    assert run_identity(config(seed=1), "exp", "run_b", options)["group"] == first["group"]
    assert run_identity(config(batch_size=8), "exp", "run_c", options)["group"] != first["group"]
    assert run_identity(config(), "exp", "run_a", WandbOptions(project="mine", group="g"))["project"] == "mine"
