import numpy as np
import pytest
import torch

from datamodules import FashionMNISTDataModule, MNISTDataModule
from datamodules.mnist import read_idx
from datamodules.stats import channel_stats
from tests.fakedata import write_fake_mnist, write_idx


def test_read_idx_round_trip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for compress in (True, False):
        path = write_idx(tmp_path / f"x{compress}", array, compress)
        np.testing.assert_array_equal(read_idx(path), array)


def test_truncated_idx_is_a_clear_error(tmp_path):
    path = write_idx(tmp_path / "x", np.zeros((4, 28, 28), np.uint8), compress=False)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_idx(path)


@pytest.mark.parametrize("layout", ["flat", "torchvision"])
def test_module_reads_generated_files_through_the_real_path(tmp_path, layout):
    folder = tmp_path if layout == "flat" else tmp_path / "MNIST" / "raw"
    arrays = write_fake_mnist(folder, n_train=100, n_test=30, compress=layout == "flat")
    dm = MNISTDataModule(data_dir=str(tmp_path), batch_size=16, val_split=20, download=False)
    dm.setup("fit")
    assert len(dm._splits["train"]) == 80 and len(dm._splits["val"]) == 20 and len(dm._splits["test"]) == 30
    images, labels = dm._splits["test"][list(range(30))]
    assert images.dtype == torch.uint8 and images.shape == (30, 1, 28, 28)
    np.testing.assert_array_equal(images[:, 0].numpy(), arrays["t10k_images"])
    np.testing.assert_array_equal(labels.numpy(), arrays["t10k_labels"])
    # train + val together are exactly the training file, split by a fixed permutation
    train_x, _ = dm._splits["train"][list(range(80))]
    val_x, _ = dm._splits["val"][list(range(20))]
    together = torch.cat([train_x, val_x])[:, 0].reshape(100, -1).numpy()
    assert sorted(map(bytes, together)) == sorted(map(bytes, arrays["train_images"].reshape(100, -1)))


def test_batches_are_normalized_with_the_module_constants(fake_mnist_dir):
    dm = MNISTDataModule(data_dir=str(fake_mnist_dir), batch_size=32, val_split=0, download=False)
    dm.setup("fit")
    images, labels = next(iter(dm.test_dataloader()))
    x, y = dm.on_after_batch_transfer((images, labels), 0)
    expected = (images.float() / 255 - 0.1307) / 0.3081
    torch.testing.assert_close(x, expected)
    assert x.dtype == torch.float32 and torch.equal(y, labels)


def test_val_split_zero_validates_on_the_test_split(fake_mnist_dir):
    dm = MNISTDataModule(data_dir=str(fake_mnist_dir), val_split=0, download=False)
    dm.setup("fit")
    assert dm._splits["val"] is dm._splits["test"] and len(dm._splits["train"]) == 256


def test_fraction_split_and_drop_last(fake_mnist_dir):
    dm = MNISTDataModule(data_dir=str(fake_mnist_dir), batch_size=50, val_split=0.25, download=False)
    dm.setup("fit")
    assert len(dm._splits["val"]) == 64
    batches = list(dm.train_dataloader())
    assert [len(b[1]) for b in batches] == [50, 50, 50]  # 192 images, the last 42 dropped


def test_no_source_names_all_three(tmp_path, monkeypatch):
    """With the default data_dir, every place looked in is named: data_dir, its torchvision layout, the
    system copy, and the download."""
    monkeypatch.setattr(FashionMNISTDataModule, "system_dirs", (str(tmp_path / "no_system_copy"),))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "FashionMNIST" / "raw").mkdir(parents=True)
    dm = FashionMNISTDataModule(download=False)
    with pytest.raises(FileNotFoundError) as info:
        dm.setup("fit")
    message = str(info.value)
    assert "data lacks" in message and "data/FashionMNIST/raw lacks" in message
    assert "no_system_copy lacks" in message and "torchvision download" in message
    assert "apt-get install dataset-fashion-mnist" in message


@pytest.mark.parametrize("bad", [0, -4, 2.5])
def test_bad_batch_size(bad):
    with pytest.raises(ValueError, match="data.batch_size must be an integer >= 1"):
        MNISTDataModule(batch_size=bad)


def test_real_fashion_mnist_files(tmp_path, monkeypatch, system_fashion_mnist):
    monkeypatch.chdir(tmp_path)  # the default data_dir `data` is empty there: the system copy is read
    dm = FashionMNISTDataModule(download=False)
    x, y = dm.load_split(train=True)
    assert x.shape == (60000, 1, 28, 28) and y.shape == (60000,) and set(y.unique().tolist()) == set(range(10))
    # the normalization constants are the training set's own statistics
    mean, std = channel_stats(x)
    assert abs(mean[0] - dm.mean[0]) < 1e-4 and abs(std[0] - dm.std[0]) < 1e-4
    assert dm.load_split(train=False)[0].shape == (10000, 1, 28, 28)
    assert dm.data_source == str(system_fashion_mnist)
