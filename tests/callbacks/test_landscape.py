"""`LandscapeProbe` (Santurkar et al. 2018, Fig. 4) against analytic and independent references.

- quadratic L(θ) = ½θᵀAθ: L(θ−ηg), ‖∇L(θ−ηg) − g‖ = η‖Ag‖, β_eff = ‖Ag‖/‖g‖, in closed form;
- linear softmax (with BatchNorm1d, dropout): a direct computation with `torch.func.functional_call`
  on a copy; the `update` direction from a fresh torch optimizer loaded with the recorded state;
- bf16 autocast and `accumulate_grad_batches: 2`: g is still the probed batch's own fp32 gradient;
- the probe leaves parameters, grads, buffers, optimizer state and RNG bit-identical.
"""
import re

import pytest
import torch

from callbacks.landscape import LandscapeProbe
from callbacks.step_probe import probe_mode
from tests.callbacks.probe_models import (STEP_SIZES, LinearSoftmax, QuadraticModel, StateRecorder,
                                          assert_same_state, classification_loader, fit, reference_values)


def quadratic_problem(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=generator, dtype=torch.float64))
    A = q @ torch.diag(torch.tensor([4.0, 2.0, 1.0, 0.5, 0.25], dtype=torch.float64)) @ q.T
    return A, torch.randn(5, generator=generator, dtype=torch.float64)


@pytest.mark.parametrize("relative_to_lr", [False, True])
def test_quadratic_matches_the_closed_form(relative_to_lr):
    A, theta0 = quadratic_problem()
    lr = 0.05
    recorder = StateRecorder()
    probe = LandscapeProbe(every_n_steps=2, step_sizes=STEP_SIZES, relative_to_lr=relative_to_lr)
    capture = fit(QuadraticModel(A, theta0, lr=lr), [recorder, probe], classification_loader(), max_steps=5)
    logged = capture.with_prefix("landscape/")
    assert sorted(logged) == [0, 2, 4]
    for step, row in logged.items():
        theta = recorder.states[step]["params"]["theta"]
        g = A @ theta
        assert torch.allclose(recorder.states[step]["grads"]["theta"], g, rtol=1e-12)

        def loss(t):
            return float(0.5 * t @ A @ t)

        scale = lr if relative_to_lr else 1.0
        ag = float((A @ g).norm())
        losses = [loss(theta)]
        for eta in STEP_SIZES:
            losses.append(loss(theta - eta * scale * g))
            assert row[f"landscape/loss@{eta:g}"] == pytest.approx(losses[-1], rel=1e-6)
            assert row[f"landscape/grad_pred@{eta:g}"] == pytest.approx(eta * scale * ag, rel=1e-6)
        beta = ag / float(g.norm())
        assert row["landscape/beta_eff"] == pytest.approx(beta, rel=1e-6)
        assert row["landscape/beta_eff"] <= float(torch.linalg.eigvalsh(A).max()) * (1 + 1e-9)
        assert row["landscape/loss_min"] == pytest.approx(min(losses), rel=1e-6)
        assert row["landscape/loss_max"] == pytest.approx(max(losses), rel=1e-6)
        assert row["landscape/grad_pred_min"] == pytest.approx(STEP_SIZES[0] * scale * ag, rel=1e-6)
        assert row["landscape/grad_pred_max"] == pytest.approx(STEP_SIZES[-1] * scale * ag, rel=1e-6)


@pytest.mark.parametrize("direction,exclude_norm,batch_norm,dropout", [
    ("gradient", False, False, 0.0),
    ("gradient", True, True, 0.3),
    ("update", True, True, 0.3),
])
def test_linear_softmax_matches_functional_call(direction, exclude_norm, batch_norm, dropout):
    torch.manual_seed(0)
    lr = 0.01
    optimizer = "adam" if direction == "update" else "sgd"
    model = LinearSoftmax(batch_norm=batch_norm, dropout=dropout, optimizer=optimizer, lr=lr)
    before, after = StateRecorder(), StateRecorder()
    probe = LandscapeProbe(every_n_steps=3, step_sizes=STEP_SIZES, direction=direction,
                           exclude_norm_params=exclude_norm)
    capture = fit(model, [before, probe, after], classification_loader(), max_steps=7)
    logged = capture.with_prefix("landscape/")
    assert sorted(logged) == [0, 3, 6]
    for step, row in logged.items():
        assert_same_state(before.states[step], after.states[step])
        assert_matches_reference(row, model, before.states[step], direction, exclude_norm, lr)
    assert capture.hyperparams["landscape/exclude_norm_params"] is exclude_norm


def assert_matches_reference(row, model, state, direction, exclude_norm, lr):
    losses, preds, betas = reference_values(model, state, direction, exclude_norm, lr)
    for eta, loss_k, pred in zip(STEP_SIZES, losses[1:], preds):
        assert row[f"landscape/loss@{eta:g}"] == pytest.approx(loss_k, rel=1e-5)
        assert row[f"landscape/grad_pred@{eta:g}"] == pytest.approx(pred, rel=1e-5)
    assert row["landscape/loss_min"] == pytest.approx(min(losses), rel=1e-5)
    assert row["landscape/loss_max"] == pytest.approx(max(losses), rel=1e-5)
    assert row["landscape/grad_pred_min"] == pytest.approx(min(preds), rel=1e-5)
    assert row["landscape/grad_pred_max"] == pytest.approx(max(preds), rel=1e-5)
    assert row["landscape/beta_eff"] == pytest.approx(max(betas), rel=1e-5)


@pytest.mark.parametrize("precision,accumulate", [("bf16-mixed", 1), ("32-true", 2), ("bf16-mixed", 2)])
def test_mixed_precision_and_accumulation_probe_the_batch_own_fp32_gradient(precision, accumulate):
    """Under bf16 autocast `.grad` is rounded, and with `accumulate_grad_batches: 2` it is the mean over
    two batches: g must still be ∇L(θ;B) in fp32 of the probed batch B (the window's last, the one
    the recorder saw last), as the functional_call reference computes it."""
    torch.manual_seed(0)
    model = LinearSoftmax(batch_norm=True, dropout=0.3, lr=0.01)
    before, after = StateRecorder(), StateRecorder()
    probe = LandscapeProbe(every_n_steps=2, step_sizes=STEP_SIZES)
    capture = fit(model, [before, probe, after], classification_loader(), max_steps=5, precision=precision,
                  accumulate_grad_batches=accumulate)
    logged = capture.with_prefix("landscape/")
    assert sorted(logged) == [0, 2, 4]
    for step, row in logged.items():
        assert_same_state(before.states[step], after.states[step])
        assert_matches_reference(row, model, before.states[step], "gradient", False, 0.01)


def test_probe_mode_turns_autocast_off_whoever_turned_it_on():
    """Lightning 2.6 calls the probe hook outside its autocast region; a caller that holds one open
    still gets fp32 probes."""
    layer = torch.nn.Linear(4, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(torch.randn(2, 4)).dtype == torch.bfloat16
        with probe_mode(layer):
            assert layer(torch.randn(2, 4)).dtype == torch.float32 and torch.is_grad_enabled()


@pytest.mark.parametrize("bad,message", [
    (dict(every_n_steps=0), "landscape.every_n_steps must be an integer >= 1, got 0"),
    (dict(step_sizes=[]), "landscape.step_sizes must be a non-empty list of numbers > 0"),
    (dict(step_sizes=[0.1, -0.2]), "landscape.step_sizes must be a non-empty list of numbers > 0"),
    (dict(direction="adam"), "landscape.direction must be one of gradient, update, got 'adam'"),
])
def test_bad_settings_are_refused(bad, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        LandscapeProbe(**bad)
