"""The activation statistics of a run SIGKILLed mid-epoch and resumed are those of an uninterrupted run.

Reference: one uninterrupted `lightning fit` with the activations preset (in process). Faulty: the same
command as a real subprocess that SIGKILLs itself after step 9 (`kill_during_fit.py`; its newest
checkpoint is step 8's, and it had measured step 8), a histogram line cut short appended as a kill in
the middle of a write leaves it, then the same command again, which resumes. Read back, the resumed
run's `activation_histograms.jsonl` and the `activation/*` cells of its `metrics.csv` hold every
measured step exactly once, with the reference's values (training is bit-identical on the CPU).
"""
import csv
import os
import subprocess
import sys

from callbacks.activation_records import HISTOGRAM_FILE, read_histograms
from lightning_app.command import main
from tests.helpers import ROOT, run_dirs, tiny_args

EVERY, STEPS = 2, 12  # 192 training images / batch 32 = 6 steps per epoch, 2 epochs


def run_args(data_dir, root):
    return tiny_args(data_dir, root, "--data", "datamodules.MNISTDataModule", "--trainer.deterministic", "true",
                     "--config", str(ROOT / "configs/presets/activations.yaml"),
                     "--activation_stats.every_n_steps", str(EVERY), "--activation_stats.channels", "[0, 5]",
                     "--checkpoint_every_n_steps", "4", "--test_after_fit", "false")


def activation_cells(run_dir) -> list[tuple[int, str, str]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return sorted((int(row["step"]), key, value) for row in csv.DictReader(f) for key, value in row.items()
                      if key.startswith("activation/") and value not in ("", None))


def test_a_resumed_run_continues_the_statistics(data_dir, tmp_path, capsys):
    main(run_args(data_dir, tmp_path / "reference"))
    (reference,) = run_dirs(tmp_path / "reference")
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}
    killed = subprocess.run([sys.executable, "-m", "tests.lightning_app.kill_during_fit", "after_step", "9",
                             *run_args(data_dir, tmp_path / "faulty")], capture_output=True, text=True, cwd=ROOT,
                            env=env, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    (run_dir,) = run_dirs(tmp_path / "faulty")
    histograms = run_dir / HISTOGRAM_FILE
    assert {r["step"] for r in read_histograms(histograms)} == {0, 2, 4, 6, 8}  # step 8: after the checkpoint
    with histograms.open("a") as f:
        f.write('{"step": 10, "layer": "net.features.1", "chan')  # a write the kill cut short
    main(run_args(data_dir, tmp_path / "faulty"))
    assert "resuming the interrupted run" in capsys.readouterr().err

    expected = read_histograms(reference / HISTOGRAM_FILE)
    assert sorted({r["step"] for r in expected}) == list(range(0, STEPS, EVERY))
    assert {r["layer"] for r in expected} == {"net.features.1", "net.features.5"}
    assert read_histograms(histograms) == expected
    lines = histograms.read_text().splitlines()
    assert len(lines) == len(expected) == len(range(0, STEPS, EVERY)) * 2 * 2 * 2  # steps × layers × channels × 2
    cells = activation_cells(run_dir)
    assert cells == activation_cells(reference)
    steps_per_key = {}
    for step, key, _ in cells:
        steps_per_key.setdefault(key, []).append(step)
    assert len(steps_per_key) == 2 * (2 * 2 + 2)  # layers × (mean, var per channel + two η²): GNPlus is grouped
    assert all(steps == list(range(0, STEPS, EVERY)) for steps in steps_per_key.values())
