"""Oracle for src/model/safetensors.ts: writes a .safetensors file by hand from the format spec, with the
16-bit payloads produced by PyTorch, so that our reader is checked against an independent writer.

stdin: {"output": path, "tensors": [{"name", "dtype": "F32"|"F16"|"BF16", "shape", "values": [...]}],
        "metadata": {...} | null}
stdout: {"tensors": {name: [float32 values after torch's rounding, as float32 bit patterns]}}
"""
import json
import struct
import sys

import numpy as np
import torch

req = json.load(sys.stdin)
TORCH = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
header = {}
if req.get("metadata") is not None:
    header["__metadata__"] = req["metadata"]
blobs = []
offset = 0
expected = {}
for t in req["tensors"]:
    x = torch.tensor(t["values"], dtype=torch.float32).reshape(t["shape"]).to(TORCH[t["dtype"]])
    if t["dtype"] == "F32":
        raw = x.numpy().astype("<f4").tobytes()
    else:
        raw = x.view(torch.int16).numpy().astype("<i2").tobytes()
    header[t["name"]] = {"dtype": t["dtype"], "shape": t["shape"], "data_offsets": [offset, offset + len(raw)]}
    blobs.append(raw)
    offset += len(raw)
    expected[t["name"]] = x.to(torch.float32).reshape(-1).numpy().view(np.uint32).tolist()
# No padding on purpose: the data then starts at an unaligned position, which readers must handle.
h = json.dumps(header).encode("utf-8")
with open(req["output"], "wb") as f:
    f.write(struct.pack("<Q", len(h)))
    f.write(h)
    for b in blobs:
        f.write(b)
print(json.dumps({"tensors": expected, "header_len": len(h)}))
