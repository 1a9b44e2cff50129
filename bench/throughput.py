"""End-to-end training throughput (images/s) of every backbone × {bn, gn, gn_plus_gn_first}.

One training step = forward, cross-entropy, backward, SGD step, on synthetic CIFAR-shaped data
(batch 128, 3×32×32, already on the device). Ratios are to `bn` on the same backbone, measured
interleaved in one run. On a GPU the GPU preset's switches are on (bf16 autocast, channels_last);
`epoch_s` is the time of a CIFAR-10-sized epoch (50,000 images) at that throughput. Target on a
GPU: gn_plus_gn_first ≥ 0.85× bn's throughput for ResNet-18.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from bench.timing import device_name, interleaved_medians, peak_host_rss_mb, ratios
from models.backbones import BACKBONES, build_backbone

BATCH, EPOCH_IMAGES = 128, 50_000
NORMS = ("bn", "gn", "gn_plus_gn_first")


def training_step_fn(backbone: str, norm: str, device: torch.device):
    on_gpu = device.type == "cuda"
    net = build_backbone(backbone, num_classes=10, in_channels=3, norm=norm, norm_groups=16, image_size=32).to(device)
    memory_format = torch.channels_last if on_gpu else torch.contiguous_format
    net = net.to(memory_format=memory_format)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(BATCH, 3, 32, 32, device=device).contiguous(memory_format=memory_format)
    y = torch.randint(0, 10, (BATCH,), device=device)
    autocast = torch.autocast("cuda", torch.bfloat16) if on_gpu else contextlib.nullcontext()

    def step() -> None:
        with autocast:
            loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def run() -> list[dict]:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    # CPU steps of the large backbones take seconds each: fewer repeats there keep `make bench` minutes long.
    repeats, warmup = (10, 3) if device.type == "cuda" else (3, 1)
    rows = []
    for backbone in BACKBONES:
        steps = {norm: training_step_fn(backbone, norm, device) for norm in NORMS}
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        medians = interleaved_medians(steps, repeats=repeats, warmup=warmup, device=device)
        ratio = ratios({n: 1 / t for n, t in medians.items()}, "bn")  # throughput ratio: higher is better
        for norm, seconds in medians.items():
            rows.append({
                "backbone": backbone, "norm": norm, "images_per_s": BATCH / seconds,
                "throughput_vs_bn": ratio[norm], "epoch_s": EPOCH_IMAGES * seconds / BATCH,
                "peak_rss_mb": peak_host_rss_mb(),
                "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else "not measured",
                "device": device_name(),
            })
    return rows
