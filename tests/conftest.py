import os

import pytest

os.environ.setdefault("WANDB_MODE", "offline")

from tests.fakedata import write_fake_mnist  # noqa: E402


@pytest.fixture
def fake_mnist_dir(tmp_path):
    """A folder with tiny MNIST-format IDX files (gzipped), as torchvision or Debian ship them."""
    folder = tmp_path / "fake_mnist"
    write_fake_mnist(folder)
    return folder
