#!/usr/bin/env python3
"""Writes the safetensors fixtures with the reference `safetensors` package (PyPI), so the C++
reader is checked against files the real library produced. Run from this folder:
    pip install safetensors numpy && python3 make_fixtures.py
Outputs: reference.safetensors, sharded/ (two shards + model.safetensors.index.json) and
expected.json (names, dtypes, shapes, values as numbers)."""
import json
import os
import struct

import numpy as np
from safetensors import TensorSpec, serialize_file
from safetensors.numpy import save_file


def bf16_bytes(values):
    # bfloat16 = upper half of float32 (values chosen to be exact in bf16).
    return b"".join(struct.pack("<I", struct.unpack("<I", struct.pack("<f", v))[0])[2:] for v in values)


tensors = {
    "a": np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5,
    "b": np.array([1, -2, 3, 1 << 40], dtype=np.int64),
    "c": np.array([[[0.5, -1.25]]], dtype=np.float16),
    "scalar": np.array(7.0, dtype=np.float32),
    "empty": np.zeros((0, 3), dtype=np.float32),
    "bytes": np.array([0, 1, 2, 254, 255], dtype=np.uint8),
    "i32": np.array([[-7, 8]], dtype=np.int32),
    "f64": np.array([1e-300, 3.25], dtype=np.float64),
}
save_file(tensors, "reference.safetensors", metadata={"format": "pt", "note": "fixture"})

bf16_values = [1.0, -2.0, 0.15625, 384.0]
os.makedirs("sharded", exist_ok=True)
raw = np.frombuffer(bf16_bytes(bf16_values), dtype=np.uint8).copy()  # kept alive for the call
spec = TensorSpec(dtype="bfloat16", shape=[2, 2], data_ptr=raw.ctypes.data, data_len=raw.nbytes)
serialize_file({"layer.0.w": spec}, "sharded/model-00001-of-00002.safetensors", metadata={"format": "pt"})
save_file({"layer.1.w": np.array([[1.5, 2.5]], dtype=np.float32), "norm": np.ones(3, dtype=np.float32)},
          "sharded/model-00002-of-00002.safetensors", metadata={"format": "pt"})
index = {"metadata": {"total_size": 8 + 8 + 12},
         "weight_map": {"layer.0.w": "model-00001-of-00002.safetensors",
                        "layer.1.w": "model-00002-of-00002.safetensors",
                        "norm": "model-00002-of-00002.safetensors"}}
with open("sharded/model.safetensors.index.json", "w") as f:
    json.dump(index, f, indent=2)

expected = {name: {"shape": list(t.shape), "values": [float(x) for x in t.reshape(-1)]} for name, t in tensors.items()}
expected["layer.0.w"] = {"shape": [2, 2], "values": bf16_values}
with open("expected.json", "w") as f:
    json.dump(expected, f, indent=1)
