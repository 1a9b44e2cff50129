"""CIFAR-10/100 and SVHN read from generated files in their real formats, checked against torchvision's
own readers (their MD5 checks switched off for the generated files), plus the clear errors."""
import numpy as np
import pytest
import torch
import torchvision

from datamodules import CIFAR10DataModule, CIFAR100DataModule, SVHNDataModule
from tests.fakedata import write_fake_cifar, write_fake_svhn


@pytest.mark.parametrize("cls,num_classes,reference", [(CIFAR10DataModule, 10, torchvision.datasets.CIFAR10),
                                                       (CIFAR100DataModule, 100, torchvision.datasets.CIFAR100)])
def test_cifar_files_read_as_torchvision_reads_them(tmp_path, monkeypatch, cls, num_classes, reference):
    arrays = write_fake_cifar(tmp_path, num_classes, n_train=120, n_test=40)
    dm = cls(data_dir=str(tmp_path), download=False)
    images, labels = dm.load_split(train=True)
    assert images.dtype == torch.uint8 and images.shape == (120, 3, 32, 32) and labels.dtype == torch.int64
    np.testing.assert_array_equal(images.numpy(), arrays["train_images"])
    np.testing.assert_array_equal(labels.numpy(), arrays["train_labels"])
    # torchvision, the independent reader (its whole-file MD5 check cannot pass on generated files)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    for train in (True, False):
        theirs = reference(str(tmp_path), train=train)
        ours_x, ours_y = dm.load_split(train=train)
        np.testing.assert_array_equal(ours_x.permute(0, 2, 3, 1).numpy(), theirs.data)  # theirs is N×H×W×C
        assert ours_y.tolist() == list(theirs.targets)
        assert 0 <= ours_y.min() and ours_y.max() < num_classes


def test_svhn_files_read_as_torchvision_reads_them(tmp_path, monkeypatch):
    arrays = write_fake_svhn(tmp_path, n_train=90, n_test=30, n_extra=20)
    assert (arrays["train_labels"] == 0).any()  # so the 10 → 0 mapping is exercised
    monkeypatch.setattr(torchvision.datasets.svhn, "check_integrity", lambda *args, **kwargs: True)
    for split, train in (("train", True), ("test", False)):
        theirs = torchvision.datasets.SVHN(str(tmp_path), split=split)
        x, y = SVHNDataModule(data_dir=str(tmp_path), download=False).load_split(train=train)
        np.testing.assert_array_equal(x.numpy(), theirs.data)
        np.testing.assert_array_equal(y.numpy(), theirs.labels)
        np.testing.assert_array_equal(x.numpy(), arrays[f"{split}_images"])
    with_extra = SVHNDataModule(data_dir=str(tmp_path), download=False, use_extra=True, val_split=10)
    with_extra.setup("fit")
    assert len(with_extra._splits["train"]) == 90 + 20 - 10 and len(with_extra._splits["val"]) == 10
    assert len(with_extra._splits["test"]) == 30


@pytest.mark.parametrize("cls,expected", [
    (CIFAR10DataModule, "data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5, test_batch"),
    (CIFAR100DataModule, "train, test"),
    (SVHNDataModule, "train_32x32.mat, test_32x32.mat")])
def test_missing_files_name_the_folder_the_files_and_the_way_to_get_them(tmp_path, cls, expected):
    dm = cls(data_dir=str(tmp_path / "nowhere"), download=False)
    with pytest.raises(FileNotFoundError) as info:
        dm.setup("fit")
    message = str(info.value)
    assert str(tmp_path / "nowhere") in message and expected in message and "set data.download: true" in message
    assert "http" in message


def test_a_failed_download_is_reported_with_its_reason(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise RuntimeError("Error downloading cifar-10-python.tar.gz:\nno route to host")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", no_network)
    dm = CIFAR10DataModule(data_dir=str(tmp_path), download=True)
    dm.prepare_data()
    with pytest.raises(FileNotFoundError, match=r"torchvision download failed \(RuntimeError: Error downloading"):
        dm.setup("fit")


def test_corrupt_files_are_clear_errors(tmp_path):
    write_fake_cifar(tmp_path, 10, n_train=50, n_test=10)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match=r"data_batch_3 is not a CIFAR python-version file .*download again"):
        CIFAR10DataModule(data_dir=str(tmp_path), download=False).load_split(train=True)
    write_fake_svhn(tmp_path / "svhn", n_train=20, n_test=10)
    (tmp_path / "svhn" / "test_32x32.mat").write_bytes(b"MATLAB 5.0 garbage")
    with pytest.raises(ValueError, match="test_32x32.mat is not an SVHN .mat file"):
        SVHNDataModule(data_dir=str(tmp_path / "svhn"), download=False).load_split(train=False)


def test_a_cifar_file_whose_pickle_calls_os_system_runs_nothing(tmp_path):
    """A data folder from someone else: a batch file that is a real pickle calling os.system when loaded
    (as pickle.load would) is refused naming the global, and creates no file."""
    import os
    import pickle

    class RunsShellCommand:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'PWNED'}",)

    write_fake_cifar(tmp_path, 10, n_train=50, n_test=10)
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(
        pickle.dumps({b"data": RunsShellCommand(), b"labels": []}, protocol=2))
    with pytest.raises(ValueError, match=r"data_batch_2 is not a CIFAR python-version file \(UnpicklingError: it "
                                         r"names posix.system, which a data file never needs"):
        CIFAR10DataModule(data_dir=str(tmp_path), download=False).load_split(train=True)
    assert not (tmp_path / "PWNED").exists()


def test_split_sizes_and_constants_per_data_set(tmp_path):
    write_fake_cifar(tmp_path, 100, n_train=200, n_test=40)
    dm = CIFAR100DataModule(data_dir=str(tmp_path), val_split=0.1, download=False)
    dm.setup("fit")
    assert [len(dm._splits[s]) for s in ("train", "val", "test")] == [180, 20, 40]
    assert (dm.num_classes, dm.in_channels, dm.image_size) == (100, 3, 32)
    # each data set its own statistics: CIFAR-100's are not CIFAR-10's (a defect of the GN paper's code)
    assert CIFAR100DataModule.mean != CIFAR10DataModule.mean and CIFAR100DataModule.std != CIFAR10DataModule.std
    assert (dm.crop_padding, dm.horizontal_flip) == (4, True)
    assert (SVHNDataModule().crop_padding, SVHNDataModule().horizontal_flip) == (0, False)
