"""`ActivationStatistics` under DDP (2 CPU processes, gloo, sync BN): the numbers are the global batch's.

The same `lightning fit` (GNPlus, batch 32, 4 steps) on one process and on two (16 images each, the
same samples, sync_batchnorm: the same training, see test_ddp_equivalence.py). The two-process run
must log what the one-process run logs: every histogram counts all 32 images (the ranks' counts are
summed), the means, variances and η² are the global batch's, and rank 0 alone writes: each histogram
line and each metrics.csv cell exists once.
"""
import csv
import os
import subprocess
import sys

import pytest

from callbacks.activation_records import HISTOGRAM_FILE, read_histograms
from tests.helpers import ROOT, run_dirs, tiny_args

pytestmark = pytest.mark.slow  # real processes


def fit(data_dir, root, *extra):
    args = tiny_args(data_dir, root, "--model.norm", "gn_plus_gn_first", "--model.optimizer", "sgd",
                     "--model.lr", "0.05", "--model.schedule", "constant", "--trainer.max_steps", "4",
                     "--trainer.accelerator", "cpu", "--trainer.deterministic", "true", "--test_after_fit", "false",
                     "--config", str(ROOT / "configs/presets/activations.yaml"),
                     "--activation_stats.every_n_steps", "2", *extra)
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "lightning_app", *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = run_dirs(root)
    with open(run_dir / "metrics.csv", newline="") as f:
        cells = [(int(row["step"]), key, float(value)) for row in csv.DictReader(f) for key, value in row.items()
                 if key.startswith("activation/") and value]
    return run_dir, cells


def test_two_processes_log_the_global_batch_once(data_dir, tmp_path):
    one_dir, one = fit(data_dir, tmp_path / "one")
    two_dir, two = fit(data_dir, tmp_path / "two", "--config", str(ROOT / "configs/presets/ddp.yaml"),
                       "--trainer.devices", "2", "--trainer.sync_batchnorm", "true")
    assert len(one) == len({(step, key) for step, key, _ in one}) == 2 * 2 * (3 * 2 + 2)  # steps × layers × keys
    assert sorted((step, key) for step, key, _ in two) == sorted((step, key) for step, key, _ in one)
    expected = {(step, key): value for step, key, value in one}
    for step, key, value in two:
        assert value == pytest.approx(expected[step, key], rel=1e-4, abs=1e-6), (step, key)

    lines = (two_dir / HISTOGRAM_FILE).read_text().splitlines()
    records = read_histograms(two_dir / HISTOGRAM_FILE)
    assert len(lines) == len(records) == 2 * 2 * 3 * 2  # written once: steps × layers × channels × before/after
    key = lambda r: (r["step"], r["layer"], r["channel"], r["where"])  # noqa: E731
    reference = {key(r): r for r in read_histograms(one_dir / HISTOGRAM_FILE)}
    for record in records:
        images, size = 32, (28 * 28 if record["layer"] == "net.features.1" else 14 * 14)
        assert record["below"] + sum(record["counts"]) + record["above"] == images * size
        same = reference[key(record)]
        # the two trainings agree to rounding (test_ddp_equivalence.py): a value within that of a bin edge
        # may land in the neighbouring bin, nothing more
        assert sum(abs(a - b) for a, b in zip(record["counts"] + [record["below"], record["above"]],
                                              same["counts"] + [same["below"], same["above"]])) <= 4
