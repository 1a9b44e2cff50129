"""Synthetic run directories in the stable on-disk format the report reads (config.yaml, summary.json,
CSV-logger metrics.csv), for the report tests: every value here is chosen so the tests can compute
the expected tables and plotted series by hand."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import yaml

STEPS_PER_EPOCH, EPOCHS = 10, 3


def write_metrics_csv(path: Path, rows: list[dict]) -> None:
    """As Lightning's CSV logger writes it: columns epoch, step and the sorted keys; rows sparse."""
    keys = sorted({k for row in rows for k in row} - {"epoch", "step"})
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["epoch", "step", *keys])
        writer.writeheader()
        writer.writerows(rows)


def write_run(root: Path, norm: str, batch_size: int, seed: int, status: str, final_val_acc: float | None,
              lr: float = 0.1, landscape: bool = False, run_name: str | None = None, trainer: dict | None = None,
              summary: dict | None = None, rows: list[dict] | None = None, experiment: str = "study",
              model: dict | None = None) -> Path:
    """One run directory; `rows` replaces the generated metrics, `summary`/`trainer`/`model` add to theirs."""
    name = run_name or f"fashion_mnist_small_cnn_{norm}_bs{batch_size}_lr{lr:g}_s{seed}_abc123"
    run_dir = root / experiment / name
    run_dir.mkdir(parents=True)
    config = {"seed_everything": seed, "experiment": experiment, "run_name": name,
              "trainer": {"max_epochs": EPOCHS, "default_root_dir": str(root), **(trainer or {})},
              "model": {"backbone": "small_cnn", "norm": norm, "norm_groups": 4, "lr": lr, "optimizer": "sgd",
                        **(model or {})},
              "data": {"class_path": "datamodules.FashionMNISTDataModule",
                       "init_args": {"batch_size": batch_size, "data_dir": "data"}}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    exploded = status == "exploded"
    if rows is None:
        rows = _generated_rows(norm, seed, lr, exploded, landscape, final_val_acc)
    lambdas = {key.removeprefix("lambda/"): value for row in rows for key, value in row.items()
               if key.startswith("lambda/")}  # the last logged σ(λ) per layer, as the run summary holds it
    (run_dir / "summary.json").write_text(json.dumps({
        "status": status, "best_val_acc": final_val_acc, "final_val_acc": final_val_acc, "test_acc": final_val_acc,
        "epochs": 1 if exploded else EPOCHS, "steps": 10, "wall_seconds": 12.5, "explosion": None,
        "global_batch_size": batch_size, **({"lambdas": lambdas} if lambdas else {}), **(summary or {})}))
    write_metrics_csv(run_dir / "metrics.csv", rows)
    return run_dir


def _generated_rows(norm: str, seed: int, lr: float, exploded: bool, landscape: bool,
                    final_val_acc: float | None) -> list[dict]:
    rows, scale = [], 1.0 + lr + 0.1 * seed + {"bn": 0.0, "gn": 0.6}.get(norm, 0.3)
    last_step = STEPS_PER_EPOCH if exploded else STEPS_PER_EPOCH * EPOCHS
    for step in range(0, last_step, 2):
        loss = math.inf if exploded and step == last_step - 2 else scale * 2.3 / (1 + step / 5)
        rows.append({"epoch": step // STEPS_PER_EPOCH, "step": step, "train/loss": loss})
        if norm.startswith("gn_plus"):
            rows.append({"epoch": step // STEPS_PER_EPOCH, "step": step,
                         "lambda/net.features.1": 0.73 - 0.004 * step, "lambda/net.features.5": 0.73 + 0.002 * step})
        if landscape and step % 4 == 0:
            low = scale / (1 + step / 5)
            rows.append({"epoch": step // STEPS_PER_EPOCH, "step": step, "landscape/loss_min": low,
                         "landscape/loss_max": 2 * low, "landscape/grad_pred_min": 0.1 * low,
                         "landscape/grad_pred_max": 0.3 * low, "landscape/beta_eff": 5 * low})
    for epoch in range(1 if exploded else EPOCHS):
        rows.append({"epoch": epoch, "step": (epoch + 1) * STEPS_PER_EPOCH - 1, "val/loss": 1.0 / (epoch + 1),
                     "val/acc": (final_val_acc or 0.1) - 0.02 * (EPOCHS - 1 - epoch)})
    return rows
