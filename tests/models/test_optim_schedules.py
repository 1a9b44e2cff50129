"""The LR schedules of `models.optim.lr_multiplier` against torch's own schedulers, step by step.

References (torch.optim.lr_scheduler, stepped once per optimizer step as the classifier does):
- warm-up: `LinearLR` from 1/W to 1 over the first W steps, multiplied into the main schedule
  (`ChainedScheduler`: the warm-up scales the schedule, it does not delay it);
- step / multistep: `StepLR` / `MultiStepLR` with the epochs turned into steps;
- cosine: `CosineAnnealingLR` over all steps;
- onecycle: `OneCycleLR` (Smith & Topin 2018) peaking at step ⌊0.3·T⌋, from 1/25 of the peak up to it
  linearly (`anneal_strategy="linear"`), then down to 1/1000 of it along a cosine ("cos").
Every step is compared, and the warm-up boundary, the milestones and the last step by hand. The
classifier's epoch length under gradient accumulation is checked in a real Trainer.
"""
import math

import pytest
import torch
from pytorch_lightning import Callback, Trainer
from torch.optim import lr_scheduler
from torch.utils.data import DataLoader, TensorDataset

from models.classifier import ImageClassifier
from models.optim import lr_multiplier

BASE_LR = 0.4
TOTAL, PER_EPOCH, WARMUP = 60, 7, 5  # 60 steps ≈ 8.6 epochs of 7 steps; the last epoch is partial


def torch_lrs(make_scheduler, steps: int = TOTAL) -> list[float]:
    """The LR torch's scheduler gives each of the first `steps` optimizer steps."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=BASE_LR)
    scheduler = make_scheduler(optimizer)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def our_lrs(schedule: str, warmup: int = 0, milestones=(2, 5), gamma: float = 0.1, step_size: int = 3) -> list[float]:
    factor = lr_multiplier(schedule, TOTAL, PER_EPOCH, list(milestones), gamma, step_size, warmup)
    return [BASE_LR * factor(t) for t in range(TOTAL)]


def with_warmup(make_main, warmup: int):
    if not warmup:
        return make_main
    return lambda opt: lr_scheduler.ChainedScheduler(
        [lr_scheduler.LinearLR(opt, start_factor=1 / warmup, end_factor=1.0, total_iters=warmup - 1), make_main(opt)])


MAIN_SCHEDULES = {
    "constant": lambda opt: lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0),
    "step": lambda opt: lr_scheduler.StepLR(opt, step_size=3 * PER_EPOCH, gamma=0.1),
    "multistep": lambda opt: lr_scheduler.MultiStepLR(opt, milestones=[2 * PER_EPOCH, 5 * PER_EPOCH], gamma=0.1),
    "cosine": lambda opt: lr_scheduler.CosineAnnealingLR(opt, T_max=TOTAL),
}


@pytest.mark.parametrize("warmup", [0, WARMUP])
@pytest.mark.parametrize("schedule", list(MAIN_SCHEDULES))
def test_schedule_matches_torch_at_every_step(schedule, warmup):
    ours, reference = our_lrs(schedule, warmup), torch_lrs(with_warmup(MAIN_SCHEDULES[schedule], warmup))
    assert ours == pytest.approx(reference, rel=1e-12, abs=1e-15)


def test_warmup_boundary_and_last_step_by_hand():
    lrs = our_lrs("cosine", WARMUP)
    cosine = [0.5 * (1 + math.cos(math.pi * t / TOTAL)) for t in range(TOTAL)]
    assert lrs[0] == pytest.approx(BASE_LR / WARMUP * cosine[0])
    assert lrs[WARMUP - 1] == pytest.approx(BASE_LR * cosine[WARMUP - 1])  # the last warm-up step is full
    assert lrs[WARMUP] == pytest.approx(BASE_LR * cosine[WARMUP])
    assert lrs[-1] == pytest.approx(BASE_LR * 0.5 * (1 + math.cos(math.pi * (TOTAL - 1) / TOTAL)))
    assert our_lrs("constant", WARMUP)[WARMUP - 2:WARMUP + 1] == pytest.approx(
        [BASE_LR * (WARMUP - 1) / WARMUP, BASE_LR, BASE_LR])


def test_milestones_are_epochs_starting_at_that_epochs_first_step():
    lrs = our_lrs("multistep", milestones=(2, 5))
    assert lrs[2 * PER_EPOCH - 1] == pytest.approx(BASE_LR) and lrs[2 * PER_EPOCH] == pytest.approx(BASE_LR * 0.1)
    assert lrs[5 * PER_EPOCH - 1] == pytest.approx(BASE_LR * 0.1)
    assert lrs[5 * PER_EPOCH] == pytest.approx(BASE_LR * 0.01)
    steps = our_lrs("step", step_size=3)
    assert steps[3 * PER_EPOCH - 1] == pytest.approx(BASE_LR) and steps[3 * PER_EPOCH] == pytest.approx(BASE_LR * 0.1)


def test_onecycle_matches_torch_onecycle_in_each_phase():
    peak = int(0.3 * TOTAL)

    def onecycle(strategy):
        # torch peaks at step pct_start·total_steps − 1 and reaches its floor at total_steps − 1: ours
        # peaks at `peak` and reaches the floor one step after the last (at t = TOTAL).
        return lambda opt: lr_scheduler.OneCycleLR(
            opt, max_lr=BASE_LR, total_steps=TOTAL + 1, pct_start=(peak + 1) / (TOTAL + 1), anneal_strategy=strategy,
            div_factor=25.0, final_div_factor=40.0, cycle_momentum=False)

    ours, up, down = our_lrs("onecycle"), torch_lrs(onecycle("linear")), torch_lrs(onecycle("cos"))
    assert ours[:peak + 1] == pytest.approx(up[:peak + 1], rel=1e-12)
    assert ours[peak:] == pytest.approx(down[peak:], rel=1e-12)
    assert ours[0] == pytest.approx(BASE_LR / 25) and ours[peak] == pytest.approx(BASE_LR)
    floor = BASE_LR / 1000
    assert ours[-1] == pytest.approx(floor + (BASE_LR - floor) * 0.5 * (1 + math.cos(math.pi * (TOTAL - 1 - peak)
                                                                                        / (TOTAL - peak))))


def test_an_epoch_of_one_step_matches_torch():
    """One batch per epoch: the epochs of step and multistep are then the optimizer steps themselves."""
    factor = lr_multiplier("step", TOTAL, 1, [], 0.5, 3, 0)
    reference = torch_lrs(lambda opt: lr_scheduler.StepLR(opt, step_size=3, gamma=0.5))
    assert [BASE_LR * factor(t) for t in range(TOTAL)] == pytest.approx(reference, rel=1e-12)
    factor = lr_multiplier("multistep", TOTAL, 1, [2, 5], 0.5, 3, 0)
    reference = torch_lrs(lambda opt: lr_scheduler.MultiStepLR(opt, milestones=[2, 5], gamma=0.5))
    assert [BASE_LR * factor(t) for t in range(TOTAL)] == pytest.approx(reference, rel=1e-12)


def test_onecycle_of_a_few_steps_by_hand():
    """Four steps: the peak is step max(⌊0.3·4⌋, 1) = 1, the fall spans the remaining three."""
    factor = lr_multiplier("onecycle", 4, 2, [], 0.1, 1, 0)
    fall = [1e-3 + (1 - 1e-3) * 0.5 * (1 + math.cos(math.pi * k / 3)) for k in (1, 2)]
    assert [factor(t) for t in range(4)] == pytest.approx([0.04, 1.0, *fall], rel=1e-12)


@pytest.mark.parametrize("schedule,total,end", [
    ("cosine", 1, 0.0), ("cosine", 2, 0.0), ("cosine", 5, 0.0), ("onecycle", 2, 1e-3), ("onecycle", 5, 1e-3)])
def test_past_the_last_step_the_schedule_stays_at_its_end(schedule, total, end):
    """LambdaLR asks for step T after the last one, and a resumed run may run on: cosine stays at 0 and
    one-cycle at 1/1000 of its peak (torch's cosine would rise again; ours is clamped)."""
    factor = lr_multiplier(schedule, total, 1, [], 0.1, 1, 0)
    assert [factor(t) for t in (total, total + 1, 2 * total, 3 * total + 1)] == pytest.approx([end] * 4, abs=1e-15)


def test_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="unknown schedule 'linear'; allowed: constant, step, multistep, cosine"):
        lr_multiplier("linear", TOTAL, PER_EPOCH, [], 0.1, 3, 0)


class LearningRates(Callback):
    def __init__(self):
        self.lrs = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.lrs.append(optimizer.param_groups[0]["lr"])


def test_classifier_epochs_count_the_partial_accumulation_window():
    """5 batches with `accumulate_grad_batches: 2` make 3 optimizer steps per epoch (Lightning steps on
    an epoch's last batch too): the milestone at epoch 1 falls on step 3, not step 2."""
    model = ImageClassifier(num_classes=2, in_channels=1, image_size=8, lr=0.5, schedule="multistep",
                            milestones=[1], gamma=0.1, norm="gn", norm_groups=4)
    data = TensorDataset(torch.randn(10, 1, 8, 8), torch.tensor([0, 1] * 5))
    recorder = LearningRates()
    Trainer(accelerator="cpu", max_epochs=2, accumulate_grad_batches=2, callbacks=[recorder], logger=False,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            num_sanity_val_steps=0).fit(model, DataLoader(data, batch_size=2))
    reference = torch_lrs(lambda opt: lr_scheduler.MultiStepLR(opt, milestones=[3], gamma=0.1), steps=6)
    assert recorder.lrs == pytest.approx([lr / BASE_LR * 0.5 for lr in reference], rel=1e-12)
