"""`LandscapeProbe` under DDP (2 CPU processes, gloo): every rank probes its own batch with its own
gradient (no all-reduce), the logged values are the mean over ranks of each rank's numbers (checked
against a `functional_call` computation per rank), and the training ends bit-identical to the
same DDP fit without the probe.
"""
import os
import subprocess
import sys

import pytest
import torch

from tests.callbacks.ddp_probe_run import LR
from tests.callbacks.probe_models import STEP_SIZES, LinearSoftmax, assert_equal_nested, reference_values
from tests.helpers import ROOT


@pytest.mark.slow
def test_ddp_probe_averages_per_rank_measurements_and_changes_nothing(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline"}
    for mode in ("plain", "probe"):
        result = subprocess.run([sys.executable, "-m", "tests.callbacks.ddp_probe_run", str(tmp_path), mode],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
    runs = {(mode, rank): torch.load(tmp_path / f"{mode}_rank{rank}.pt", weights_only=False)
            for mode in ("plain", "probe") for rank in (0, 1)}
    for rank in (0, 1):
        assert_equal_nested(runs["plain", rank]["final"], runs["probe", rank]["final"])
        assert_equal_nested(runs["plain", rank]["optimizer"], runs["probe", rank]["optimizer"])
    logged = {step: row for step, row in runs["probe", 0]["metrics"].items() if "landscape/beta_eff" in row}
    assert sorted(logged) == [0, 2, 4]
    for step, row in logged.items():
        per_rank = [reference_values(LinearSoftmax(batch_norm=True), runs["probe", rank]["states"][step],
                                     "gradient", False, LR) for rank in (0, 1)]
        assert per_rank[0][0][0] != per_rank[1][0][0]  # L(θ) differs: each rank has its own batch
        for i, eta in enumerate(STEP_SIZES):
            mean_loss = sum(r[0][i + 1] for r in per_rank) / 2
            mean_pred = sum(r[1][i] for r in per_rank) / 2
            assert row[f"landscape/loss@{eta:g}"] == pytest.approx(mean_loss, rel=1e-5)
            assert row[f"landscape/grad_pred@{eta:g}"] == pytest.approx(mean_pred, rel=1e-5)
        assert row["landscape/beta_eff"] == pytest.approx(sum(max(r[2]) for r in per_rank) / 2, rel=1e-5)
        assert row["landscape/loss_max"] == pytest.approx(sum(max(r[0]) for r in per_rank) / 2, rel=1e-5)
