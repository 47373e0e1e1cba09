"""Oracle for src/model/half-float.ts: PyTorch's float32 <-> float16/bfloat16 conversions, on raw bits.

stdin: {"input": path of little-endian uint32 float32 bit patterns, "output": path to write}
output file: uint16 bf16 bits of each input, uint16 f16 bits of each input,
             uint32 float32 bits of all 65536 f16 values, then of all 65536 bf16 values.
"""
import json
import sys

import numpy as np
import torch

req = json.load(sys.stdin)
bits = np.fromfile(req["input"], dtype="<u4")
x = torch.from_numpy(bits.view(np.float32).copy())
bf16 = x.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
f16 = x.to(torch.float16).view(torch.int16).numpy().view(np.uint16)
all16 = torch.from_numpy(np.arange(65536, dtype=np.int32).astype(np.uint16).view(np.int16))
from_f16 = all16.view(torch.float16).to(torch.float32).numpy().view(np.uint32)
from_bf16 = all16.view(torch.bfloat16).to(torch.float32).numpy().view(np.uint32)
with open(req["output"], "wb") as f:
    for a in (bf16, f16, from_f16, from_bf16):
        f.write(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes())
print(json.dumps({"n": int(bits.size), "torch": torch.__version__}))
