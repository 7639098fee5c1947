"""The networks of docs/models.md in PyTorch, with the tensor names cxr_attn uses.

This is the independent oracle for the C core: written from models.md, not from the C code."""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from cxr_safetensors import load_safetensors, save_safetensors  # noqa: E402,F401

ARCHS = {
    "alexnet": (),
    "alexnet_attn1": (4,),
    "alexnet_attn2": (3, 4),
    "alexnet_attn3": (2, 3, 4),
}


class CxrNet(nn.Module):
    def __init__(self, arch, score="dot", in_channels=3):
        super().__init__()
        self.arch, self.score, self.taps = arch, score, ARCHS[arch]
        self.conv1 = nn.Conv2d(in_channels, 64, 11, 4, 2)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 192, 5, 1, 2)
        self.bn2 = nn.BatchNorm2d(192)
        self.conv3 = nn.Conv2d(192, 384, 5, 1, 2)
        self.bn3 = nn.BatchNorm2d(384)
        self.conv4 = nn.Conv2d(384, 256, 3, 1, 1)
        self.bn4 = nn.BatchNorm2d(256)
        self.pool = nn.MaxPool2d(3, 2)
        if arch == "alexnet":
            self.conv5 = nn.Conv2d(256, 256, 3, 1, 1)
            self.avgpool = nn.AdaptiveAvgPool2d(6)
            self.fc1 = nn.Linear(9216, 4096)
            self.fc2 = nn.Linear(4096, 4096)
            self.fc3 = nn.Linear(4096, 1)
        else:
            self.conv5 = nn.Conv2d(256, 256, 3, 1, 0)
            if 2 in self.taps:
                self.proj2 = nn.Conv2d(192, 256, 1, bias=False)
            if 3 in self.taps:
                self.proj3 = nn.Conv2d(384, 256, 1, bias=False)
            self.fc1 = nn.Linear(256 * len(self.taps), 128)
            self.fc2 = nn.Linear(128, 1)

    def forward(self, x, dropout_mask=None):
        """x: N x C x S x S. Returns (logits N, {layer: alpha N x P})."""
        raw = {}
        for i, (conv, bn) in enumerate(
            [(self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3), (self.conv4, self.bn4)],
            start=1,
        ):
            c = conv(x)
            raw[i] = c
            x = bn(F.relu(self.pool(c)))
        self.last_raw = raw
        if dropout_mask is not None:
            x = x * dropout_mask
        else:
            x = F.dropout(x, 0.5, self.training)
        g = self.conv5(x)
        alphas = {}
        if self.arch == "alexnet":
            h = torch.flatten(self.avgpool(g), 1)
            h = F.relu(self.fc1(h))
            h = F.relu(self.fc2(h))
            return self.fc3(h)[:, 0], alphas
        g = g.flatten(1)
        scale = 1.0 / 16.0 if self.score == "scaled_dot" else 1.0
        outs = []
        for layer in self.taps:
            f = raw[layer]
            if layer == 2:
                f = self.proj2(f)
            elif layer == 3:
                f = self.proj3(f)
            f = f.flatten(2)
            a = torch.softmax(torch.einsum("ncp,nc->np", f, g) * scale, dim=1)
            alphas[layer] = a
            outs.append(torch.einsum("ncp,np->nc", f, a))
        h = F.relu(self.fc1(torch.cat(outs, 1)))
        return self.fc2(h)[:, 0], alphas

    def metadata(self):
        md = {"arch": self.arch, "input_size": "299", "in_channels": str(self.conv1.in_channels),
              "mean": "0.5", "std": "0.5"}
        if self.arch != "alexnet":
            md["attention_score"] = self.score
        return md


def pool_margin(raw):
    """Smallest gap between the largest and second-largest value of any 3x3/2 max-pool window,
    relative to the layer's largest magnitude. Where it is at float32 rounding level the pooling
    choice (and so the gradient) is not defined to float32 precision."""
    worst = float("inf")
    for c in raw.values():
        win = c.detach().unfold(2, 3, 2).unfold(3, 3, 2).flatten(-2)
        top = win.topk(2, dim=-1).values
        worst = min(worst, ((top[..., 0] - top[..., 1]).min() / c.abs().max()).item())
    return worst


class TorchvisionResNet50(nn.Module):
    """torchvision's resnet50 with a 1-logit fc, answering (logits, {}) as CxrNet does."""

    def __init__(self):
        super().__init__()
        import torchvision
        self.net = torchvision.models.resnet50(weights=None, num_classes=1)

    def forward(self, x, dropout_mask=None):
        return self.net(x)[:, 0], {}


def network_input(gray, meta):
    """The gray images (N x S x S, [0, 1]) as the network's input: each channel normalised with
    the file's mean and std (one number, or one per channel)."""
    channels = int(meta.get("in_channels", "3"))
    def per_channel(key, default):
        v = [float(x) for x in meta.get(key, default).split(",")]
        return torch.tensor(v * channels if len(v) == 1 else v, dtype=gray.dtype).view(1, -1, 1, 1)
    x = gray.unsqueeze(1).repeat(1, channels, 1, 1)
    return (x - per_channel("mean", "0.5")) / per_channel("std", "0.5")


def model_from_file(path):
    tensors, meta = load_safetensors(path)
    if meta["arch"] == "resnet50":
        net = TorchvisionResNet50()
        net.net.load_state_dict(tensors, strict=False)
        return net
    net = CxrNet(meta["arch"], meta.get("attention_score", "dot"), int(meta.get("in_channels", "3")))
    net.load_state_dict(tensors, strict=False)
    missing = set(net.state_dict()) - set(tensors) - {k for k in net.state_dict() if k.endswith("num_batches_tracked")}
    assert not missing, missing
    return net


# ---- the counter-based generator the C core uses for dropout masks ----
M64 = (1 << 64) - 1


def splitmix64(x):
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def dropout_mask(seed, n, p=0.5):
    idx = np.arange(n, dtype=np.uint64)
    z = splitmix64(splitmix64(np.uint64(seed)) ^ idx)
    u = (z >> np.uint64(40)).astype(np.float64) / 16777216.0
    return np.where(u < p, 0.0, 1.0 / (1.0 - p)).astype(np.float32)
