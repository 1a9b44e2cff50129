"""What `setup` refuses, checked on the data module itself with a real (tiny, CPU) Trainer attached, as
`trainer.fit` attaches it: a fit that would take no training step, train on batches smaller than
`batch_size`, or end every epoch with a batch of one image per device for a norm with batch statistics;
a `val_split` that leaves no training image, and a training file that holds none. Each refusal is held
to its exact message (the README's bad-input rows give the same wording), and each case just inside a
limit must be accepted, with the number of training batches an epoch then has counted by hand.

The generated MNIST-format files hold 100 training images; `val_split` of them are held out, so the
training split of every case below is 100 - val_split images.
"""
import pytest
from pytorch_lightning import Trainer

from datamodules import MNISTDataModule
from tests.fakedata import write_fake_mnist

FAKE_MNIST_SIZES = {"n_train": 100, "n_test": 20}  # read by the `data_dir` fixture
NORMS = {"bn": True, "gn": False}  # model.norm -> does it normalize with batch statistics in training?
NOTHING = "trains nothing; use a value >= 1 (max_epochs and max_steps: -1 for no limit)"


def module(data_dir, devices=1, norm="bn", trainer_options=None, **data_options) -> MNISTDataModule:
    """An MNIST module on the generated files (batch 16 unless told), told the model's norm, with a Trainer
    attached. Two devices build a DDP Trainer without launching its processes: rank 0 of a world of 2."""
    dm = MNISTDataModule(data_dir=str(data_dir), download=False, **{"batch_size": 16, **data_options})
    dm.expect_norm(norm, NORMS[norm])
    dm.trainer = Trainer(accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto",
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, **(trainer_options or {}))
    assert dm.trainer.world_size == devices
    return dm


def one_image_per_device(n_train: int, remainder: int) -> str:
    """The refusal of an epoch ending in `remainder` images (n_train = 2·16 + remainder), model.norm=bn."""
    return (f"data.drop_last=false and the training split has {n_train} images "
            f"(data.val_split={100 - n_train} held out): every epoch ends with a batch of {remainder} "
            f"({n_train} = 2·16 + {remainder}), 1 image per device, and model.norm='bn' normalizes with "
            "batch statistics; set data.drop_last: true, or change batch_size or val_split")


def larger_than_the_split(batch: int, n_train: int, why: str) -> str:
    return (f"data.batch_size={batch} is larger than the training set: the training split has {n_train} "
            f"images (data.val_split={100 - n_train} held out), so {why}; use a batch of at most {n_train} "
            "or a smaller val_split")


def zero(key: str) -> tuple[dict, str]:
    return dict(trainer_options={key: 0}, val_split=20), f"trainer.{key}=0 {NOTHING}"


REFUSED = {
    "max_epochs 0": zero("max_epochs"),
    "max_steps 0": zero("max_steps"),
    "limit_train_batches 0": zero("limit_train_batches"),
    "batch one above the split (drop_last)": (
        dict(val_split=85), larger_than_the_split(16, 15, "no batch is complete (drop_last)")),
    "batch above the split (no drop_last)": (
        dict(batch_size=32, val_split=80, drop_last=False),
        larger_than_the_split(32, 20, "every batch would be smaller than data.batch_size")),
    "last batch of 1, one device": (dict(val_split=67, drop_last=False), one_image_per_device(33, 1)),
    "last batch of 2, two devices": (dict(devices=2, val_split=66, drop_last=False),
                                     one_image_per_device(34, 2)),
    "last batch of 3, two devices (2 + 1)": (dict(devices=2, val_split=65, drop_last=False),
                                             one_image_per_device(35, 3)),
}


@pytest.mark.parametrize("case", REFUSED)
def test_setup_for_fit_refuses_with_the_exact_message(data_dir, case):
    options, message = REFUSED[case]
    dm = module(data_dir, **options)
    with pytest.raises(ValueError) as info:
        dm.setup("fit")
    assert str(info.value) == message


# Just inside each limit: (options, training batches per epoch counted by hand).
ACCEPTED = {
    "no limits (-1)": (dict(trainer_options={"max_epochs": -1, "max_steps": -1}, val_split=20), 5),  # 5·16
    "batch equal to the split, no drop_last": (dict(val_split=84, drop_last=False), 1),  # 16 = 1·16 + 0
    "last batch of 3, one device": (dict(val_split=65, drop_last=False), 3),  # 35 = 2·16 + 3
    "last batch of 1 dropped (drop_last)": (dict(val_split=67), 2),  # 33 = 2·16 + 1, the 1 dropped
    "last batch of 1, a norm without batch statistics": (dict(val_split=67, drop_last=False, norm="gn"), 3),
    "last batch of 4, two devices (2 + 2)": (dict(devices=2, val_split=64, drop_last=False), 3),  # 2·16 + 4
}


@pytest.mark.parametrize("case", ACCEPTED)
def test_setup_for_fit_accepts_the_cases_just_inside_the_limits(data_dir, case):
    options, batches = ACCEPTED[case]
    dm = module(data_dir, **options)
    dm.setup("fit")
    assert len(dm.train_dataloader()) == batches


@pytest.mark.parametrize("val_split", [100, 101])
def test_val_split_of_the_whole_training_file_is_refused(data_dir, val_split):
    dm = MNISTDataModule(data_dir=str(data_dir), val_split=val_split, download=False)
    with pytest.raises(ValueError) as info:
        dm.setup("fit")
    assert str(info.value) == f"data.val_split={val_split} leaves no training images (the set has 100)"


def test_val_split_leaving_one_training_image_is_accepted(data_dir):
    dm = MNISTDataModule(data_dir=str(data_dir), val_split=99, batch_size=1, download=False)
    dm.setup("fit")
    assert len(dm.train_dataloader()) == 1


def test_training_file_with_no_image_is_refused(tmp_path):
    write_fake_mnist(tmp_path, n_train=0, n_test=4)
    dm = MNISTDataModule(data_dir=str(tmp_path), val_split=0, download=False)
    with pytest.raises(ValueError) as info:
        dm.setup("fit")
    assert str(info.value) == f"mnist: the training split in {tmp_path.resolve()} holds no images"


def test_training_file_with_one_image_is_enough(tmp_path):
    write_fake_mnist(tmp_path, n_train=1, n_test=4)
    dm = MNISTDataModule(data_dir=str(tmp_path), val_split=0, batch_size=1, download=False)
    dm.setup("fit")
    assert len(dm.train_dataloader()) == 1
