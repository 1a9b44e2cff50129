"""The shipped GN-paper Table 2 sweep (configs/sweeps/table2_cifar10.yaml: 5 norms × batch 8…128 with
lr = 0.1 × bs/128) reads back as ONE table in the paper's layout: every run of its plan trained for
two steps on generated CIFAR-10 files, then `lightning report`. The backbone is swapped for the small
CNN (ResNet-50 steps at batch 128 take seconds each on a CPU); grouping depends only on the grid."""
import re

import pytest

from lightning_app.command import main
from lightning_app.report.tables import ordered_norms
from lightning_app.sweep.plan import plan_sweep
from lightning_app.sweep.spec import load_sweep
from tests.fakedata import write_fake_cifar
from tests.helpers import ROOT


@pytest.mark.slow
def test_table2_sweep_plan_reports_one_table_with_the_tied_lr_rule(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the sweep file names its base config relative to the repository
    write_fake_cifar(tmp_path / "data", 10, n_train=256, n_test=100)
    runs_dir = tmp_path / "runs"
    extra = ["--trainer.default_root_dir", str(runs_dir), "--data.init_args.data_dir", str(tmp_path / "data"),
             "--data.init_args.download", "false", "--model.backbone", "small_cnn", "--model.norm_groups", "4",
             "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1", "--trainer.limit_test_batches", "1",
             "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    plan = plan_sweep(load_sweep("configs/sweeps/table2_cifar10.yaml"), extra)
    assert len(plan) == 25
    for run in plan:
        main(["fit", *run.args])
    out = tmp_path / "report"
    # test_acc: two steps end before the first validation, so final_val_acc is n/a in every cell
    main(["report", str(runs_dir / "table2_cifar10"), "--out", str(out), "--metric", "test_acc"])
    text = (out / "report.md").read_text()
    accuracy = text[text.index("## Accuracy"):text.index("\n## ", text.index("## Accuracy"))]
    assert accuracy.count("\n### ") == 1
    assert "Tied to the batch size: lr = 0.1 × bs/128." in accuracy
    rows = [line for line in accuracy.splitlines() if line.startswith("|")]
    norms = ordered_norms(["bn", "gn", "gn_plus_bn_first", "gn_plus_gn_first", "gn_plus_parallel"])
    assert rows[0] == "| Batch size | " + " | ".join(norms) + " |"  # the registry's order
    assert [row.split(" | ")[0] for row in rows[2:]] == ["| 8", "| 16", "| 32", "| 64", "| 128", "| Mean", "| Variance"]
    for row in rows[2:7]:
        assert all(re.fullmatch(r"\d+\.\d\d", cell.strip()) for cell in row.strip("|").split("|")[1:]), row
    assert "accuracy_vs_batch_00.png" in text
