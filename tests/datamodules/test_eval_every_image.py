"""Validation and test see every image of their split, the last partial batch included, on both data
paths (DataLoader and on_device), in a real Trainer: the images counted in the evaluation steps against
the split sizes written to the files, and the test labels, in order, against the test label file."""
import pytest
from pytorch_lightning import Callback, Trainer, seed_everything

from datamodules import MNISTDataModule
from models.classifier import ImageClassifier
from tests.fakedata import write_fake_mnist

N_TRAIN, N_TEST, VAL_SPLIT, EVAL_BATCH = 96, 53, 37, 16  # 37 = 2·16 + 5, 53 = 3·16 + 5: a partial last batch


class CountImages(Callback):
    """Per evaluation run (a validation or a test): the labels of every batch the model was given."""

    def __init__(self):
        self.runs: dict[str, list[list[int]]] = {"val": [], "test": []}

    def _start(self, stage):
        self.runs[stage].append([])

    def on_validation_epoch_start(self, trainer, pl_module):
        self._start("val")

    def on_test_epoch_start(self, trainer, pl_module):
        self._start("test")

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.runs["val"][-1] += batch[1].tolist()

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.runs["test"][-1] += batch[1].tolist()


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mnist")
    return folder, write_fake_mnist(folder, n_train=N_TRAIN, n_test=N_TEST)


@pytest.mark.parametrize("on_device", [False, True], ids=["dataloader", "on_device"])
def test_validation_and_test_evaluate_every_image_of_their_split(mnist, on_device):
    folder, arrays = mnist
    seed_everything(0)
    dm = MNISTDataModule(data_dir=str(folder), batch_size=16, eval_batch_size=EVAL_BATCH, val_split=VAL_SPLIT,
                         download=False, on_device=on_device)
    model = ImageClassifier(num_classes=10, in_channels=1, image_size=28, norm="gn", norm_groups=4)
    counter = CountImages()
    trainer = Trainer(accelerator="cpu", max_epochs=2, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                      callbacks=[counter])
    trainer.fit(model, dm)
    trainer.test(model, dm, verbose=False)
    trainer.validate(model, dm, verbose=False)
    assert [len(labels) for labels in counter.runs["val"]] == [VAL_SPLIT] * 3  # two epochs, then validate
    assert [len(labels) for labels in counter.runs["test"]] == [N_TEST]
    assert counter.runs["test"][0] == arrays["t10k_labels"].tolist()  # each test image once, in file order
    assert sorted(counter.runs["val"][0]) == sorted(counter.runs["val"][1]) == sorted(counter.runs["val"][2])
