#!/usr/bin/env python3
"""Writes the ResNet50 fixture the C core tests compare against (test/unit/test_reference.c,
config resnet50-dot), from torchvision's own resnet50 (random weights, a 1-logit fc): not from
the C code. At full size (224): two random gray inputs; eval-mode logits; one training step
(BCE-with-logits, Adam lr 1e-4, batch statistics) with every parameter gradient, and the
parameters and BN running statistics after Adam. The oracle computes in float64.
The fixture also prints PyTorch's own float32 error on the same step, for comparison.

    python3 test/ref/resnet_reference.py --out test/fixtures
"""
import argparse
import os
import sys

import torch
import torchvision

sys.path.insert(0, os.path.dirname(__file__))
from cxrnet import network_input as cxr_input, save_safetensors  # noqa: E402

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
BATCH, SIDE, SEED = 2, 224, 321


def metadata():
    return {"arch": "resnet50", "input_size": str(SIDE), "in_channels": "3",
            "mean": ",".join(str(v) for v in MEAN), "std": ",".join(str(v) for v in STD)}


def network_input(gray):
    return cxr_input(gray, metadata())


def randomise(net, gen):
    """Non-trivial BN statistics and affine terms, so inference-mode BN is really exercised. The
    last BN of each residual branch is scaled down (as torchvision's zero_init_residual does, to
    zero): with full-size branches this random network's training step is so ill-conditioned
    that PyTorch's own float32 gradients miss float64's by 10-20% (median 2%); scaled, by a
    median 3e-6."""
    with torch.no_grad():
        for name, m in net.named_modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) * 0.5 + 0.75)
                if name.endswith("bn3"):
                    m.weight.mul_(0.05)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
        net.fc.bias.copy_(torch.randn(net.fc.bias.shape, generator=gen) * 0.05)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    net = torchvision.models.resnet50(weights=None, num_classes=1)
    randomise(net, gen)
    net = net.double()
    d = os.path.join(args.out, "resnet50-dot")
    os.makedirs(d, exist_ok=True)
    # num_batches_tracked stays in the file: the loader must ignore it
    save_safetensors(os.path.join(d, "model.safetensors"), net.state_dict(), metadata())

    gray = torch.rand((BATCH, SIDE, SIDE), generator=gen).double()
    labels = torch.tensor([1.0, 0.0], dtype=torch.float64)
    fx = {"input": gray, "labels": labels}
    state_before = {k: v.clone() for k, v in net.state_dict().items()}
    net.eval()
    with torch.no_grad():
        fx["eval_logits"] = net(network_input(gray))[:, 0]
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
    opt.zero_grad()
    logits = net(network_input(gray))[:, 0]
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
    loss.backward()
    fx["train_logits"] = logits.detach()
    fx["train_loss"] = loss.detach().reshape(1)
    for name, p in net.named_parameters():
        fx[f"grad.{name}"] = p.grad
    # PyTorch's own float32 error on the same step: the noise floor of any float32 engine
    f32 = torchvision.models.resnet50(weights=None, num_classes=1)
    f32.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in
                         state_before.items()})
    f32.train()
    f32_loss = torch.nn.functional.binary_cross_entropy_with_logits(
        f32(network_input(gray).float())[:, 0], labels.float())
    f32_loss.backward()
    f32err = {}
    for name, p in f32.named_parameters():
        ref = fx[f"grad.{name}"]
        f32err[f"f32err.{name}"] = ((p.grad.double() - ref).abs().max() /
                                    ref.abs().max().clamp_min(1e-30)).reshape(1)
    opt.step()
    for name, t in net.state_dict().items():
        if not name.endswith("num_batches_tracked"):
            fx[f"after.{name}"] = t
    save_safetensors(os.path.join(d, "fixture.safetensors"), fx, {"dropout_seed": "0"})
    worst = max(f32err.items(), key=lambda kv: kv[1].item())
    print(f"wrote {d}: loss {loss.item():.6f}; PyTorch float32 gradient error up to "
          f"{worst[1].item():.3g} ({worst[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
