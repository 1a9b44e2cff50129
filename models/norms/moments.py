"""One pass of per-(sample, channel) moments, and normalizations that reduce to one multiply-add.

GN, BN and every GNPlus mix of them ("Understanding and Improving Group Normalization", §4) are,
per sample n and channel c, an affine map y[n,c] = A[n,c]·x[n,c] + B[n,c]. A and B depend on x only
through its per-(n, c) mean and (biased) variance over (H, W):
- GN's statistics are averages of those over the group's channels, BN's over the samples (the law of
  total variance combines them exactly: var = mean of variances + variance of means);
- a normalization applied to an affine map of x (GN first, BN first) has statistics that follow
  analytically from x's moments and that map.

The same holds for `gbgn`/`bgn` with groups of whole channels (candidates.py).
`MomentAffine` computes the moments in one read of x (sum and sum of squares, as BLAS products),
lets a layer turn them into (A, B) on small (N, C) tensors, and applies one multiply-add. Its backward
is fused the same way: two reductions (Σ g, Σ g·x per (n, c)) and one pass writing ∂L/∂x, with the
small (N, C) part differentiated by autograd. For second derivatives (Hessian-vector products) the
backward re-derives everything with differentiable ops, so `create_graph=True` stays exact.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch

# coefficients(mean, var, *tensors) -> (A, B, extras): A, B of shape (N, C); `extras` are tensors the
# layer wants from the same computation (e.g. the BN part's batch statistics), never differentiated.
Coefficients = Callable[..., tuple]


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """Statistics are computed in at least float32, whatever the activations' precision."""
    return torch.promote_types(x.dtype, torch.float32)


def sample_channel_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and biased variance of each (sample, channel) over the remaining axes, shape (N, C).

    Differentiable (`MomentAffine`'s second-derivative path uses it with a graph). On CPU without a
    graph it reads x twice at BLAS / vectorized speed (matrix-vector product, squared row norms:
    torch.var_mean is several times slower) and forms E[x²] − E[x]², whose relative error is about
    1e-7·(mean/std)²; rows with |mean| > 10·std (rare for activations) switch the whole tensor to the
    exact two-pass variance, at one more pass. Elsewhere the two-pass variance is always used (a
    guard would need a host sync on a GPU).
    """
    n, c = x.shape[:2]
    rows = x.to(compute_dtype(x)).reshape(n * c, -1)
    count = rows.shape[1]
    mean = (rows @ rows.new_ones(count)) / count
    if (torch.is_grad_enabled() and rows.requires_grad) or x.device.type != "cpu":
        var = (rows - mean[:, None]).pow(2).mean(1)
    else:
        var = (torch.linalg.vector_norm(rows, dim=1).square() / count - mean * mean).clamp_min(0)
        if bool((mean * mean > 100 * var).any()):
            var = torch.linalg.vector_norm(rows - mean[:, None], dim=1).square() / count
    return mean.view(n, c), var.view(n, c)


def group_statistics(mean: torch.Tensor, var: torch.Tensor, groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """GN's statistics from per-(n, c) moments: mean and variance over each group's channels, (N, C)."""
    n, c = mean.shape
    mean_g, var_g = mean.view(n, groups, c // groups), var.view(n, groups, c // groups)
    group_mean = mean_of_last_axis(mean_g)
    group_var = mean_of_last_axis(var_g) + mean_of_last_axis((mean_g - group_mean).pow(2))
    return group_mean.expand_as(mean_g).reshape(n, c), group_var.expand_as(var_g).reshape(n, c)


def batch_statistics(mean: torch.Tensor, var: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """BN's statistics from per-(n, c) moments: mean and biased variance over samples, shape (C,)."""
    channel_mean = mean_of_first_axis(mean)
    return channel_mean, mean_of_first_axis(var) + mean_of_first_axis((mean - channel_mean).pow(2))


# Means as products with a vector of ones: on a busy CPU, torch's reductions over (N, C)-sized tensors
# can take milliseconds each (thread wake-ups), where a BLAS matrix-vector product takes microseconds.
def mean_of_first_axis(t: torch.Tensor) -> torch.Tensor:
    return t.new_full((t.shape[0],), 1.0 / t.shape[0]) @ t


def mean_of_last_axis(t: torch.Tensor) -> torch.Tensor:
    return (t @ t.new_full((t.shape[-1],), 1.0 / t.shape[-1])).unsqueeze(-1)


def apply_affine(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """y[n, c, ...] = scale[n, c]·x[n, c, ...] + shift[n, c], returned in x's dtype.

    Computed in scale's (float32 or wider) precision: with |mean| ≫ std, scale·x and shift nearly
    cancel, which bf16 arithmetic would get wrong by O(1).
    """
    y = torch.addcmul(_broadcast(shift, x), x, _broadcast(scale, x))
    return y if y.dtype == x.dtype else y.to(x.dtype)


class MomentAffine(torch.autograd.Function):
    """y = A·x + B per (n, c), with (A, B, extras) = coefficients(mean, var, *tensors) from x's moments."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, coefficients: Coefficients, *tensors: torch.Tensor):
        with statistics_precision(x):
            return MomentAffine._forward(ctx, x, coefficients, *tensors)

    @staticmethod
    def _forward(ctx, x, coefficients, *tensors):
        mean, var = sample_channel_moments(x)
        with small_tensor_threads(x):
            scale, shift, extras = coefficients(mean, var, *tensors)
        ctx.coefficients = coefficients
        ctx.save_for_backward(x, mean, var, *tensors)
        ctx.mark_non_differentiable(*extras)
        return (apply_affine(x, scale, shift), *extras)

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor, *unused_extra_grads):
        with statistics_precision(grad_y):
            return MomentAffine._backward(ctx, grad_y)

    @staticmethod
    def _backward(ctx, grad_y):
        x, mean, var, *tensors = ctx.saved_tensors
        wanted = ctx.needs_input_grad[2:]
        if torch.is_grad_enabled():
            return _recomputed_grads(ctx.coefficients, x, tensors, grad_y, ctx.needs_input_grad)
        count = x[0, 0].numel()
        grad_scale, grad_shift = _position_sums(grad_y, x, mean)
        with small_tensor_threads(x), torch.enable_grad():
            leaves = [mean.detach().requires_grad_(), var.detach().requires_grad_()] + [
                t.detach().requires_grad_(w) for t, w in zip(tensors, wanted)]
            scale, shift, _ = ctx.coefficients(*leaves)
            differentiable = [leaf for leaf in leaves if leaf.requires_grad]
            grads = iter(torch.autograd.grad((scale, shift), differentiable, (grad_scale, grad_shift),
                                             allow_unused=True))
        grad_mean, grad_var = next(grads), next(grads)
        grad_tensors = [next(grads) if w else None for w in wanted]
        grad_x = None
        if ctx.needs_input_grad[0]:
            # ∂mean/∂x = 1/M, ∂var/∂x = 2(x − mean)/M (biased variance over the M positions).
            through_var = _zero_if_none(grad_var, mean) * (2.0 / count)
            through_mean = _zero_if_none(grad_mean, mean) / count - through_var * mean
            grad_x = torch.addcmul(_broadcast(through_mean, x), x, _broadcast(through_var, x))
            grad_x = grad_x.addcmul_(grad_y, _broadcast(scale.detach(), x)).to(x.dtype)
        return (grad_x, None, *grad_tensors)


def statistics_precision(x: torch.Tensor):
    """Autocast off: the statistics' matrix products must not run in bf16/fp16 (an 8-bit mantissa
    ruins E[x²] − E[x]²); the output is cast back to x's dtype by `apply_affine`."""
    return torch.autocast(x.device.type, enabled=False)


@contextmanager
def small_tensor_threads(x: torch.Tensor) -> Iterator[None]:
    """Run the (N, C)-sized coefficient graph on one CPU thread.

    torch runs an op in parallel from 32,768 elements, which N·C reaches at (128, 256, 8, 8); on a
    busy CPU every parallel region then waits for thread wake-ups, which cost these small ops far more
    than their arithmetic (bench/RESULTS.md, "norms"). The big per-element passes stay multi-threaded.
    """
    threads = torch.get_num_threads()
    if x.device.type != "cpu" or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _zero_if_none(grad: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(like) if grad is None else grad


def _broadcast(per_sample_channel: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return per_sample_channel.view(*per_sample_channel.shape, *(1,) * (x.dim() - 2))


def _position_sums(grad_y: torch.Tensor, x: torch.Tensor, mean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ g·x and Σ g over each (n, c)'s positions, shape (N, C) in mean's dtype, reading g as it is laid out.

    The products with BLAS (a matrix-vector product, a batched dot) need g as dense rows; reshaping
    an expanded gradient (stride 0, as `y.sum().backward()` gives) or a non-contiguous one into rows
    would copy it at full size, or hand BLAS a stride-0 matrix (several times the dense product's
    time: bench/RESULTS.md, "norms with an expanded upstream gradient"). So: along every spatial axis where g is expanded it is constant, and x is summed there
    instead (Σ g·x = Σ g·Σx; over all of them that sum is M·mean, no pass at all); a gradient that
    is still not dense rows is multiplied and reduced in its own layout.
    """
    n, c = mean.shape
    spatial = list(range(2, x.dim()))
    expanded = [d for d in spatial if grad_y.stride(d) == 0 and grad_y.shape[d] > 1]
    repeats = 1
    for d in expanded:
        repeats *= grad_y.shape[d]
        grad_y = grad_y.narrow(d, 0, 1)
    g = grad_y.to(mean.dtype)
    if len(expanded) == len(spatial):
        g = g.reshape(n, c)  # at most N·C values
        return g * mean * repeats, g * repeats
    x = x.sum(expanded, keepdim=True, dtype=mean.dtype) if expanded else x.to(mean.dtype)
    if not (g.is_contiguous() and x.is_contiguous()):
        return (g * x).sum(spatial), g.sum(spatial) * repeats
    g_rows, x_rows = g.view(n * c, -1), x.view(n * c, -1)
    grad_shift = g_rows @ g_rows.new_ones(g_rows.shape[1]) * repeats
    return torch.einsum("rm,rm->r", g_rows, x_rows).view(n, c), grad_shift.view(n, c)


def _recomputed_grads(coefficients: Coefficients, x: torch.Tensor, tensors: list[torch.Tensor],
                      grad_y: torch.Tensor, needs_input_grad: tuple[bool, ...]) -> tuple:
    """The vector-Jacobian product through differentiable ops (backward with create_graph=True)."""
    mean, var = sample_channel_moments(x)
    scale, shift, _ = coefficients(mean, var, *tensors)
    y = apply_affine(x, scale, shift)
    wanted = [needs_input_grad[0], *needs_input_grad[2:]]
    inputs = [t for t, w in zip([x, *tensors], wanted) if w]
    grads = iter(torch.autograd.grad(y, inputs, grad_y, create_graph=True, allow_unused=True))
    grad_x, *grad_tensors = [next(grads) if w else None for w in wanted]
    return (grad_x, None, *grad_tensors)


def update_running_statistics(bn: torch.nn.Module, batch_mean: torch.Tensor,
                              batch_var: torch.Tensor, count: int) -> None:
    """Update `bn`'s running estimates exactly as `nn.BatchNorm2d` does in training.

    `batch_var` is the biased variance over `count` values per channel; the running variance takes
    the unbiased one. momentum=None gives the cumulative average, as in torch.
    """
    if not (bn.training and bn.track_running_stats):
        return
    bn.num_batches_tracked.add_(1)
    factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    with torch.no_grad():
        bn.running_mean.lerp_(batch_mean.to(bn.running_mean.dtype), factor)
        bn.running_var.lerp_((batch_var * (count / (count - 1))).to(bn.running_var.dtype), factor)
