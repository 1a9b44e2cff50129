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


def power_iteration(H: torch.Tensor, v: torch.Tensor, iterations: int, tolerance: float) -> tuple[float, int]:
    """PyHessian's `eigenvalues()` loop on an explicit matrix: (Rayleigh quotient, iterations used)."""
    eigenvalue = None
    for used in range(1, iterations + 1):
        v = v / v.norm()
        hv = H @ v
        estimate = float(v @ hv)
        converged = eigenvalue is not None and abs(estimate - eigenvalue) < tolerance * (abs(eigenvalue) + 1e-6)
        eigenvalue, v = estimate, hv
        if converged:
            break
    return eigenvalue, used


class QuadraticWithIdleParameter(QuadraticModel):
    """½θᵀAθ and a parameter the loss never reads: its Hessian rows and columns are zero."""

    def __init__(self, A, theta0):
        super().__init__(A, theta0)
        self.idle = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))


SPECTRUM = torch.tensor([3.0, 1.5, 1.0, 0.5, 0.2, 0.1], dtype=torch.float64)


def rotated(spectrum: torch.Tensor) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(len(spectrum), len(spectrum), generator=torch.Generator().manual_seed(1),
                                       dtype=torch.float64))
    return q @ torch.diag(spectrum) @ q.T


@pytest.mark.parametrize("A, options", [
    (rotated(SPECTRUM), dict(iterations=1, tolerance=1e-3)),
    (rotated(SPECTRUM), dict(iterations=5, tolerance=0.0)),           # never converges: every iteration
    (rotated(SPECTRUM), dict(iterations=200, tolerance=1e-3, seed=7)),
    (rotated(SPECTRUM), dict(iterations=200, tolerance=0.05)),
    (2 * torch.eye(6, dtype=torch.float64), dict(iterations=6, tolerance=0.0)),  # exact repeats: still 6
    (rotated(SPECTRUM * 1e-9), dict(iterations=50, tolerance=1e-3)),  # |λ| ≪ 1e-6: the 1e-6 decides
], ids=["one-iteration", "tolerance-0", "seed-7", "loose", "repeats-at-tolerance-0", "tiny-eigenvalue"])
def test_estimate_and_iterations_are_pyhessians_power_iteration(A, options):
    """The exact loop (start vector from the probe's seed, in the parameters' dtype; stop rule; count) on
    the explicit Hessian, bit for bit up to float64 rounding; the idle parameter's gradient is zero."""
    theta0 = torch.randn(6, generator=torch.Generator().manual_seed(2))
    probe = HessianTopEigen(every_n_steps=1, **options)
    capture = fit(QuadraticWithIdleParameter(A, theta0), [probe], classification_loader(), max_steps=1)
    H = torch.block_diag(A, torch.zeros(2, 2, dtype=torch.float64))
    v0 = torch.randn(8, generator=torch.Generator().manual_seed(options.get("seed", 0)), dtype=torch.float64)
    expected, used = power_iteration(H, v0, options["iterations"], options["tolerance"])
    row = capture.rows[0]
    assert row["hessian/iterations"] == used
    assert row["hessian/top_eig"] == pytest.approx(expected, rel=1e-12, abs=1e-30)
    assert capture.hyperparams == {"hessian/every_n_steps": 1, "hessian/iterations": options["iterations"],
                                   "hessian/tolerance": options["tolerance"]}


def test_the_defaults_are_pyhessians():
    """PyHessian's `eigenvalues(maxIter=100, tol=1e-3)`, and the start vector of seed 0."""
    probe = HessianTopEigen()
    assert probe.settings() == {"every_n_steps": 100, "iterations": 100, "tolerance": 1e-3}
    A, theta0 = rotated(SPECTRUM), torch.randn(6, generator=torch.Generator().manual_seed(2))
    capture = fit(QuadraticModel(A, theta0), [probe], classification_loader(), max_steps=1)
    v0 = torch.randn(6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected, used = power_iteration(A, v0, 100, 1e-3)
    assert (capture.rows[0]["hessian/top_eig"], capture.rows[0]["hessian/iterations"]) == (
        pytest.approx(expected, rel=1e-12), used)
