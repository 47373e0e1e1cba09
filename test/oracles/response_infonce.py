"""Oracle for responseInfoNce (src/train/rl/trainer.ts): stage 2's InfoNCE of one response embedding, in PyTorch.

stdin: {"emb": base64 float32 [1,d], "docs": base64 float32 [m,d] (constant unit rows), "d","m",
        "positive": [m] 0/1, "tau"}
stdout: {"loss": value, "grad": base64 float64 gradient of emb}
"""
import base64
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
req = json.load(sys.stdin)
d, m = req["d"], req["m"]


def f32(key, shape):
    return torch.tensor(np.frombuffer(base64.b64decode(req[key]), dtype="<f4").astype(np.float64).reshape(shape))


emb = f32("emb", (1, d)).requires_grad_(True)
docs = f32("docs", (m, d))
pos = torch.tensor(req["positive"], dtype=torch.bool)
logits = (F.normalize(emb, dim=-1) @ docs.T / req["tau"])[0]
# -log of the softmax mass on the positives; the other documents are left out with -inf
loss = torch.logsumexp(logits, 0) - torch.logsumexp(logits.masked_fill(~pos, float("-inf")), 0)
loss.backward()
grad = base64.b64encode(emb.grad.numpy().astype("<f8").tobytes()).decode()
print(json.dumps({"loss": loss.item(), "grad": grad}))
