"""A finished run's record stays what it is: evaluation writes beside it, a changed config or a
foreign checkpoint never continues it, --overwrite starts it afresh. One finished run (in process,
on generated MNIST-format data) serves every test; each hashes the record before and after."""
import csv
import hashlib
import json
import shutil

import pytest
import torch

from datamodules import FashionMNISTDataModule
from lightning_app.command import main
from models.classifier import ImageClassifier
from tests.fakedata import write_fake_mnist
from tests.helpers import error_line, run_dirs, tiny_args

RECORD = ("config.yaml", "metrics.csv", "summary.json", "hparams.yaml", "checkpoints/last.ckpt")


def record_hashes(run_dir):
    """Every file of the fit's record (all but eval/), by content."""
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file() and p.relative_to(run_dir).parts[0] != "eval"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("records") / "runs"
    main(tiny_args(data_dir, root, "--trainer.max_epochs", "1"))
    (run_dir,) = run_dirs(root)
    return data_dir, root, run_dir


def test_validate_test_predict_write_apart_and_change_no_byte_of_the_fit(finished, capsys):
    data, root, run_dir = finished
    before = record_hashes(run_dir)
    assert set(RECORD) <= set(before)
    fit_summary = json.loads((run_dir / "summary.json").read_text())
    config, last = str(run_dir / "config.yaml"), str(run_dir / "checkpoints" / "last.ckpt")
    capsys.readouterr()
    main(["test", "--config", config, "--ckpt_path", last])
    main(["validate", "--config", config, "--ckpt_path", "last"])
    main(["predict", "--config", config, "--ckpt_path", last])
    out = capsys.readouterr().out
    assert record_hashes(run_dir) == before
    evals = {p.name.split("-")[0]: p for p in (run_dir / "eval").iterdir()}
    assert sorted(evals) == ["predict", "test", "validate"]
    assert all(p.name.startswith(f"{k}-last-") for k, p in evals.items())
    for kind, folder in evals.items():
        assert f"normlab: {kind} done | results: {folder}" in out
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["subcommand"] == kind and summary["checkpoint"] == str((run_dir / "checkpoints/last.ckpt").resolve())
    test_summary = json.loads((evals["test"] / "summary.json").read_text())
    # the fit tested the same final weights on the same split
    assert test_summary["metrics"]["test/acc"] == pytest.approx(fit_summary["test_acc"], abs=1e-6)
    with open(evals["predict"] / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == json.loads((evals["predict"] / "summary.json").read_text())["predictions"] > 0
    accuracy = sum(row["prediction"] == row["label"] for row in rows) / len(rows)
    assert accuracy == pytest.approx(test_summary["metrics"]["test/acc"], abs=1e-6)  # predict = test's argmax


def test_predictions_csv_columns_are_index_prediction_label_in_that_order(finished, tmp_path):
    """README: `predictions.csv` (index, predicted class, label). An accuracy count cannot see the prediction
    and label columns swapped; the labels of the test file and the checkpoint's own argmax can. The run's
    weights are right on every test image, so the checkpoint predicted from has its output rows rolled
    by one: each prediction is then the next class, never the label."""
    data, root, run_dir = finished
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    for key in ("net.classifier.3.weight", "net.classifier.3.bias"):  # the small CNN's output layer
        checkpoint["state_dict"][key] = checkpoint["state_dict"][key].roll(1, dims=0)
    torch.save(checkpoint, tmp_path / "rolled.ckpt")  # outside the run: an evaluation writes into the run's eval/
    before = set((run_dir / "eval").glob("predict-*"))
    main(["predict", "--config", str(run_dir / "config.yaml"), "--ckpt_path", str(tmp_path / "rolled.ckpt")])
    (folder,) = set((run_dir / "eval").glob("predict-*")) - before
    with open(folder / "predictions.csv", newline="") as f:
        header, *rows = list(csv.reader(f))
    assert header == ["index", "prediction", "label"]
    arrays = write_fake_mnist(tmp_path / "data")  # the files the run was trained and tested on (same seed)
    labels = arrays["t10k_labels"].tolist()
    model = ImageClassifier(**{k: v for k, v in checkpoint["hyper_parameters"].items() if not k.startswith("_")})
    model.load_state_dict(checkpoint["state_dict"])
    mean, std = FashionMNISTDataModule.mean[0], FashionMNISTDataModule.std[0]
    x = (torch.from_numpy(arrays["t10k_images"]).float().unsqueeze(1) / 255 - mean) / std
    with torch.no_grad():
        predicted = model.eval()(x).argmax(dim=1).tolist()
    assert [[int(v) for v in row] for row in rows] == [[i, p, y] for i, (p, y) in enumerate(zip(predicted, labels))]
    assert sum(p != y for p, y in zip(predicted, labels)) > len(labels) // 2  # a swap of the columns would show


def test_a_saved_config_relaunched_with_a_changed_value_is_a_new_run(finished, capsys):
    data, root, run_dir = finished
    before = record_hashes(run_dir)
    main(["fit", "--config", str(run_dir / "config.yaml"), "--model.lr", "0.01", "--test_after_fit", "false"])
    assert "normlab: the config differs from the run" in capsys.readouterr().err
    assert record_hashes(run_dir) == before
    (new_dir,) = [p for p in run_dirs(root) if p != run_dir]
    assert "_lr0.01_" in new_dir.name and json.loads((new_dir / "summary.json").read_text())["status"] == "completed"


def test_a_checkpoint_of_another_data_set_is_refused(finished, capsys):
    data, root, run_dir = finished
    before = {p: record_hashes(p) for p in run_dirs(root)}
    args = tiny_args(data, root, "--data", "datamodules.MNISTDataModule", "--data.init_args.data_dir", str(data),
                     "--data.init_args.batch_size", "32", "--trainer.max_epochs", "1",
                     "--ckpt_path", str(run_dir / "checkpoints/last.ckpt"))
    message = error_line(capsys, lambda: main(args))
    assert "whose science differs (data.class_path: 'datamodules.FashionMNISTDataModule' -> " \
           "'datamodules.MNISTDataModule')" in message
    assert {p: record_hashes(p) for p in run_dirs(root)} == before  # and no new run directory


def test_overwrite_refuses_to_delete_the_checkpoint_it_is_given(finished, capsys):
    data, root, run_dir = finished
    before = record_hashes(run_dir)
    args = tiny_args(data, root, "--trainer.max_epochs", "1", "--overwrite", "true",
                     "--ckpt_path", str(run_dir / "checkpoints/last.ckpt"))
    message = error_line(capsys, lambda: main(args))
    assert "--overwrite true would delete the checkpoint --ckpt_path names" in message
    assert record_hashes(run_dir) == before


def test_overwrite_starts_a_fresh_record(finished, tmp_path):
    data, root, run_dir = finished
    copy_root = tmp_path / "runs"
    shutil.copytree(run_dir, copy_root / run_dir.parent.name / run_dir.name)
    (copy,) = run_dirs(copy_root)
    (copy / "eval").mkdir(exist_ok=True)  # an evaluation of the old weights belongs to the old run
    main(tiny_args(data, copy_root, "--trainer.max_epochs", "1", "--overwrite", "true"))
    with open(copy / "metrics.csv", newline="") as f:
        steps = [(row["step"], tuple(k for k, v in row.items() if v)) for row in csv.DictReader(f)]
    assert len(steps) == len(set(steps))  # every row once: the old rows are gone, not spliced in front
    assert not (copy / "eval").exists()


def test_overwrite_refuses_a_directory_that_holds_no_run(finished, capsys):
    data, root, run_dir = finished
    thesis = run_dir.parent / "thesis"
    thesis.mkdir()
    (thesis / "notes.txt").write_text("years of work")
    message = error_line(capsys, lambda: main(tiny_args(data, root, "--run_name", "thesis",
                                                        "--overwrite", "true")))
    assert f"--overwrite: {thesis} holds no normlab run" in message
    assert [p.name for p in thesis.iterdir()] == ["notes.txt"]


def test_a_metrics_file_that_is_not_one_is_named_before_training(finished, tmp_path, capsys):
    data, root, run_dir = finished
    copy = tmp_path / "runs" / run_dir.parent.name / run_dir.name
    shutil.copytree(run_dir, copy)
    summary = json.loads((copy / "summary.json").read_text())
    (copy / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    (copy / "metrics.csv").write_bytes(b"\x00\xff garbage\nno,step,column\n1,2,3\n")
    before = record_hashes(copy)
    message = error_line(capsys, lambda: main(tiny_args(data, tmp_path / "runs", "--trainer.max_epochs",
                                                        "1")))
    assert f"{copy / 'metrics.csv'} is not a metrics file of a run" in message
    assert record_hashes(copy) == before


def test_ckpt_path_last_without_a_checkpoint_is_one_line(finished, tmp_path, capsys):
    data, root, run_dir = finished
    message = error_line(capsys, lambda: main(tiny_args(data, tmp_path, "--ckpt_path", "last")))
    assert "--ckpt_path last:" in message and "holds no checkpoint" in message
    assert not any(tmp_path.iterdir())
