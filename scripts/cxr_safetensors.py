"""The one Python reader and writer of safetensors files (no safetensors package on Debian),
shared by the model converter (torchvision_to_cxr.py) and the PyTorch test oracles."""
import json
import struct

import numpy as np
import torch


def save_safetensors(path, tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, t in tensors.items():
        arr = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
        if arr.dtype == np.int64:
            dtype = "I64"
        elif arr.dtype == np.int32:
            arr, dtype = arr.astype("<i4"), "I32"
        else:
            arr, dtype = arr.astype("<f4"), "F32"
        data = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        dt = {"F32": "<f4", "I64": "<i8", "I32": "<i4"}[info["dtype"]]
        out[name] = torch.from_numpy(np.frombuffer(data[b:e], dtype=dt).reshape(info["shape"]).copy())
    return out, meta
