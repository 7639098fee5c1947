#!/usr/bin/env python3
"""PyTorch side of the benchmark (Debian python3-torch, eval + no_grad for inference), same
shapes, same thread count. Prints "T <network> <metric> <value>" lines like bench_core.

    python3 bench/bench_torch.py THREADS [networks...]"""
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "test", "ref"))
from cxrnet import CxrNet, TorchvisionResNet50  # noqa: E402


def bench(arch, train=True):
    torch.manual_seed(1)
    resnet = arch == "resnet50"
    net = (TorchvisionResNet50() if resnet else CxrNet(arch, "scaled_dot")).eval()
    side, batch = (224, 32) if resnet else (299, 64)
    x = torch.rand(batch, 3, side, side) * 2 - 1
    with torch.no_grad():
        net(x[:1])
        times = []
        for r in range(25):
            t0 = time.perf_counter()
            net(x[r % 8:r % 8 + 1])
            times.append((time.perf_counter() - t0) * 1e3)
        print(f"T {arch} single_ms {statistics.median(times):.3f}")
        if os.environ.get("BENCH_SINGLE_ONLY") is not None:
            return
        t0 = time.perf_counter()
        reps = 2
        for _ in range(reps):
            net(x[:32])
        print(f"T {arch} batch32_img_s {reps * 32 / (time.perf_counter() - t0):.2f}")
    if train:
        net.train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-4)
        y = (torch.arange(batch) % 2).float()
        def step():
            opt.zero_grad()
            logits, _ = net(x)
            torch.nn.functional.binary_cross_entropy_with_logits(logits, y).backward()
            opt.step()
        step()
        t0 = time.perf_counter()
        steps = 2
        for _ in range(steps):
            step()
        print(f"T {arch} train_img_s {steps * batch / (time.perf_counter() - t0):.2f}")


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    torch.set_num_threads(threads)
    print(f"T torch {torch.__version__} threads {torch.get_num_threads()} "
          f"mkldnn {torch.backends.mkldnn.is_available()}")
    nets = sys.argv[2:] or ["alexnet", "alexnet_attn1", "alexnet_attn2", "alexnet_attn3", "resnet50"]
    for arch in nets:
        bench(arch, os.environ.get("BENCH_NO_TRAIN") is None)


if __name__ == "__main__":
    main()
