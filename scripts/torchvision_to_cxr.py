#!/usr/bin/env python3
"""Converts a torchvision ResNet50 checkpoint into a cxr_attn model file.

    python3 scripts/torchvision_to_cxr.py CHECKPOINT.pth resnet50.safetensors [--input-size 224]

CHECKPOINT is what torch.save wrote: a state_dict of torchvision.models.resnet50 (ImageNet
weights downloaded elsewhere, or a user's own fine-tuned model), or the whole model. A head
that is not one logit (ImageNet's 1000 classes) is replaced by a fresh 1-logit fc
(Xavier-uniform weights from --seed, zero bias), to be trained with
cxr_train(..., init_model => ..., trainable => 'fc'). The file records torchvision's input
normalisation (ImageNet's mean and std unless --mean/--std say otherwise); load it with
cxr.cxr_model_import (README.md, "ResNet50 from PyTorch").
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cxr_safetensors import save_safetensors  # noqa: E402

IMAGENET_MEAN, IMAGENET_STD = "0.485,0.456,0.406", "0.229,0.224,0.225"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--input-size", type=int, default=224, help="224 or 299")
    ap.add_argument("--mean", default=IMAGENET_MEAN)
    ap.add_argument("--std", default=IMAGENET_STD)
    ap.add_argument("--seed", type=int, default=0, help="for a new 1-logit head")
    args = ap.parse_args()
    obj = torch.load(args.checkpoint, map_location="cpu")
    state = obj.state_dict() if hasattr(obj, "state_dict") else obj
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if "fc.weight" not in state or "layer4.2.bn3.running_var" not in state:
        sys.exit(f"{args.checkpoint}: not a torchvision resnet50 state_dict")
    if tuple(state["fc.weight"].shape) != (1, 2048):
        gen = torch.Generator().manual_seed(args.seed)
        bound = (6.0 / (2048 + 1)) ** 0.5
        state["fc.weight"] = (torch.rand((1, 2048), generator=gen) * 2 - 1) * bound
        state["fc.bias"] = torch.zeros(1)
        print("replaced the head by a new 1-logit fc")
    tensors = {k: v.float() for k, v in state.items() if not k.endswith("num_batches_tracked")}
    meta = {"arch": "resnet50", "input_size": str(args.input_size), "in_channels": "3",
            "mean": args.mean, "std": args.std}
    save_safetensors(args.out, tensors, meta)
    print(f"wrote {args.out}: {len(tensors)} tensors, input {args.input_size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
