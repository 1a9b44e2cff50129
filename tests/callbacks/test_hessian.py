"""`HessianTopEigen` (PyHessian's power iteration) against exact Hessians.

- quadratic L(θ) = ½θᵀAθ: the Hessian is A, so the estimate is A's top eigenvalue;
- linear softmax: the full Hessian from `torch.func.hessian` over `functional_call`, whose
  eigenvalue of largest magnitude is what power iteration converges to;
- the probe leaves parameters, grads, buffers, optimizer state and RNG bit-identical.
"""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, hessian

from callbacks.hessian import HessianTopEigen
from tests.callbacks.probe_models import (LinearSoftmax, QuadraticModel, StateRecorder, assert_same_state,
                                          classification_loader, fit)


def test_quadratic_top_eigenvalue_is_that_of_A():
    generator = torch.Generator().manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=generator, dtype=torch.float64))
    A = q @ torch.diag(torch.tensor([3.0, 1.5, 1.0, 0.5, 0.2, 0.1], dtype=torch.float64)) @ q.T
    probe = HessianTopEigen(every_n_steps=2, iterations=200, tolerance=1e-12)
    capture = fit(QuadraticModel(A, torch.randn(6, generator=generator)), [probe], classification_loader(),
                  max_steps=3)
    logged = capture.with_prefix("hessian/")
    assert sorted(logged) == [0, 2]
    for row in logged.values():
        assert row["hessian/top_eig"] == pytest.approx(3.0, rel=1e-6)
        assert 1 < row["hessian/iterations"] < 200  # stopped by the tolerance, not the cap


def test_linear_softmax_matches_the_exact_hessian():
    torch.manual_seed(0)
    model = LinearSoftmax(batch_norm=True)
    before, after = StateRecorder(), StateRecorder()
    probe = HessianTopEigen(every_n_steps=2, iterations=500, tolerance=1e-9)
    capture = fit(model, [before, probe, after], classification_loader(), max_steps=3)
    logged = capture.with_prefix("hessian/")
    assert sorted(logged) == [0, 2]
    for step, row in logged.items():
        state = before.states[step]
        assert_same_state(state, after.states[step])
        twin = copy.deepcopy(model).double().train()
        x, y = state["batch"]
        names = [n for n, _ in twin.named_parameters()]
        shapes = [state["params"][n].shape for n in names]
        flat = torch.cat([state["params"][n].flatten() for n in names]).double()

        def loss(vector):
            pieces = vector.split([s.numel() for s in shapes])
            params = {n: t.view(s) for n, t, s in zip(names, pieces, shapes)}
            # fresh copies each call: BN updates its running statistics in train mode
            buffers = {n: b.double() if b.is_floating_point() else b.clone()
                       for n, b in state["buffers"].items()}
            return F.cross_entropy(functional_call(twin, {**buffers, **params}, (x.double(),)), y)

        eigenvalues = torch.linalg.eigvalsh(hessian(loss)(flat))
        top = eigenvalues[eigenvalues.abs().argmax()]
        assert row["hessian/top_eig"] == pytest.approx(float(top), rel=1e-4)


@pytest.mark.parametrize("bad", [dict(every_n_steps=0), dict(iterations=0), dict(tolerance=-1.0)])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError, match=f"hessian.{next(iter(bad))} must be"):
        HessianTopEigen(**bad)
