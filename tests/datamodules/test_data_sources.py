"""One data source per data set: an explicit `data_dir` must hold every file (never a silent mix with
the system copy), the default `data_dir` may fall back to the system copy, the source read is printed
and recorded, and labels outside 0..classes-1 are an error naming the file and the value.

Driven through the real loading code on files written in the real formats (tests/fakedata.py), and
through the real CLI for what summary.json records.
"""
import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from datamodules import CIFAR10DataModule, FashionMNISTDataModule, MNISTDataModule
from lightning_app.command import main
from tests.fakedata import write_fake_cifar, write_fake_mnist
from tests.lightning_app.readme_table import assert_documented
from tests.helpers import ERROR_PREFIX, run_dirs, tiny_args

SYSTEM_COPY = FashionMNISTDataModule.system_dirs[0]


def write_int8_labels(path: Path, labels: np.ndarray) -> None:
    """An IDX label file of signed bytes (dtype 0x09): the format allows negative labels."""
    header = struct.pack(">HBB", 0, 0x09, 1) + struct.pack(">I", len(labels))
    path.write_bytes(gzip.compress(header + labels.astype(np.int8).tobytes()))


def test_explicit_data_dir_with_only_the_training_files_lists_the_missing_ones(tmp_path):
    write_fake_mnist(tmp_path / "partial")
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / "partial" / name).unlink()
    dm = FashionMNISTDataModule(data_dir=str(tmp_path / "partial"))  # download left at its default
    dm.prepare_data()
    with pytest.raises(FileNotFoundError) as info:
        dm.setup("fit")
    message = str(info.value)
    assert f"{tmp_path / 'partial'} lacks t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]" in message
    assert "train-images" not in message.split("lacks", 1)[1].split(";")[0]  # only what is missing
    assert "an explicit data_dir must hold every file" in message and SYSTEM_COPY not in message
    assert "download not tried" in message and dm.data_source is None
    assert_documented("data dir holds only some files", message)


def test_explicit_data_dir_that_does_not_exist_does_not_fall_back(tmp_path):
    dm = FashionMNISTDataModule(data_dir=str(tmp_path / "nowhere"))
    dm.prepare_data()
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'nowhere'} lacks train-images-idx3-ubyte"):
        dm.setup("fit")


def test_default_data_dir_reads_every_file_from_the_system_copy_and_says_so(tmp_path, monkeypatch, capsys,
                                                                           system_fashion_mnist):
    monkeypatch.chdir(tmp_path)
    write_fake_mnist(tmp_path / "data")  # the default folder holds only some files: not mixed in
    (tmp_path / "data" / "t10k-labels-idx1-ubyte.gz").unlink()
    dm = FashionMNISTDataModule(download=False)
    x, y = dm.load_split(train=True)
    assert len(y) == 60000 and dm.data_source == SYSTEM_COPY  # not the 256 generated images
    assert dm.load_split(train=False)[1].shape == (10000,)


def test_cifar_explicit_dir_is_not_downloaded_into_unless_asked(tmp_path, monkeypatch):
    tried = []
    monkeypatch.setattr("torchvision.datasets.CIFAR10", lambda *a, **k: tried.append(k))
    CIFAR10DataModule(data_dir=str(tmp_path / "mine")).prepare_data()
    assert tried == []
    CIFAR10DataModule(data_dir=str(tmp_path / "mine"), download=True).prepare_data()
    assert tried == [{"train": True, "download": True}]


@pytest.mark.parametrize("bad_label", [-1, 10])
def test_idx_labels_out_of_range_name_file_and_value(tmp_path, bad_label):
    arrays = write_fake_mnist(tmp_path)
    labels = arrays["t10k_labels"].astype(np.int64)
    labels[7] = bad_label
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    write_int8_labels(path, labels)
    dm = MNISTDataModule(data_dir=str(tmp_path), download=False)
    with pytest.raises(ValueError) as info:
        dm.load_split(train=False)
    assert str(info.value) == f"{path} holds label {bad_label} (index 7); expected labels 0..9"


def test_cifar_labels_out_of_range_name_the_file(tmp_path, monkeypatch):
    write_fake_cifar(tmp_path, 10)
    import pickle

    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    entry = pickle.loads(path.read_bytes(), encoding="bytes")
    entry[b"labels"][3] = -2
    path.write_bytes(pickle.dumps(entry, protocol=2))
    with pytest.raises(ValueError, match=f"{path} holds label -2 \\(index 3\\); expected labels 0..9"):
        CIFAR10DataModule(data_dir=str(tmp_path), download=False).load_split(train=True)


def test_the_source_is_printed_and_recorded_in_summary_json(fake_mnist_dir, tmp_path, capsys):
    main(tiny_args(fake_mnist_dir, tmp_path, "--trainer.max_epochs", "1", "--test_after_fit", "false"))
    (run_dir,) = run_dirs(tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["data_source"] == str(fake_mnist_dir.resolve())
    assert f"normlab: fashion_mnist data read from {fake_mnist_dir.resolve()}" in capsys.readouterr().err


def test_negative_label_through_the_cli_is_one_line_before_any_run_directory(fake_mnist_dir, tmp_path, capsys):
    labels = np.zeros(256, np.int64)
    labels[5] = -3
    write_int8_labels(fake_mnist_dir / "train-labels-idx1-ubyte.gz", labels)
    with pytest.raises(SystemExit) as info:
        main(tiny_args(fake_mnist_dir, tmp_path / "runs"))
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith(ERROR_PREFIX)]
    assert lines == [f"{ERROR_PREFIX}{fake_mnist_dir / 'train-labels-idx1-ubyte.gz'} holds label -3 (index 5); "
                     "expected labels 0..9"]
    assert_documented("label out of range (either end)", lines[0][len(ERROR_PREFIX):])
    assert not any(p.is_file() for p in (tmp_path / "runs").rglob("*"))


@pytest.mark.parametrize("download,prepare,note", [
    (False, True, "torchvision download not tried (set data.download: true to fetch them into {folder})"),
    (True, False, "no torchvision download ran (prepare_data was not called)"),
    (True, True, "the torchvision download failed (OSError: no network)"),
], ids=["not asked", "asked, prepare_data not called", "asked, failed"])
def test_missing_files_message_ends_with_how_the_download_went(tmp_path, monkeypatch, download, prepare,
                                                               note):
    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr("torchvision.datasets.MNIST", offline)
    folder = tmp_path / "empty"
    dm = MNISTDataModule(data_dir=str(folder), download=download)
    if prepare:
        dm.prepare_data()
    with pytest.raises(FileNotFoundError) as info:
        dm.setup("fit")
    lacks = ", ".join(f"{stem}[.gz]" for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                                  "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))
    assert str(info.value) == (f"mnist: {folder} lacks {lacks}; an explicit data_dir must hold every file; "
                               + note.format(folder=folder))
