"""Oracle for src/train/sft/losses.ts: the stage-1 loss terms and their gradients, written independently in PyTorch.

stdin: {"q","d": base64 float32 [B,d]/[M,d], "B","M","dim", "positive": [B], "exclude", "triplet": [B*M] 0/1,
        "tau", "margin", "logits","ref": base64 float32 [N,V], "labels": [N], "N","V", "norm"}
stdout: {"infonce","triplet","sft","kl": value, "<name>_grad": base64 float64 gradients}
"""
import base64
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
req = json.load(sys.stdin)


def f32(key, shape):
    a = np.frombuffer(base64.b64decode(req[key]), dtype="<f4").astype(np.float64).reshape(shape)
    return torch.tensor(a, requires_grad=True)


def out(t):
    return base64.b64encode(t.detach().numpy().astype("<f8").tobytes()).decode()


B, M, dim, N, V = req["B"], req["M"], req["dim"], req["N"], req["V"]
pos = torch.tensor(req["positive"], dtype=torch.long)
excl = torch.tensor(req["exclude"], dtype=torch.bool).reshape(B, M)
trip = torch.tensor(req["triplet"], dtype=torch.bool).reshape(B, M)
res = {}

# InfoNCE over in-batch + hard negatives, the query's other positives removed
q, d = f32("q", (B, dim)), f32("d", (M, dim))
sim = F.normalize(q, dim=-1) @ F.normalize(d, dim=-1).T
mask = excl.clone()
mask[torch.arange(B), pos] = False
logits = (sim / req["tau"]).masked_fill(mask, float("-inf"))
loss = F.cross_entropy(logits, pos)
loss.backward()
res["infonce"], res["infonce_q"], res["infonce_d"] = loss.item(), out(q.grad), out(d.grad)

# triplet on cosine with margin
q, d = f32("q", (B, dim)), f32("d", (M, dim))
sim = F.cosine_similarity(q[:, None, :], d[None, :, :], dim=-1)
sp = sim[torch.arange(B), pos][:, None]
h = torch.relu(req["margin"] - sp + sim)[trip]
loss = h.sum() / max(int(trip.sum()), 1)
loss.backward()
res["triplet"], res["triplet_q"], res["triplet_d"] = loss.item(), out(q.grad), out(d.grad)

# SFT: summed CE over labelled rows / normaliser
lg = f32("logits", (N, V))
labels = torch.tensor(req["labels"], dtype=torch.long)
loss = F.cross_entropy(lg, labels, ignore_index=-100, reduction="sum") / req["norm"]
loss.backward()
res["sft"], res["sft_grad"] = loss.item(), out(lg.grad)

# KL(pi || pi_ref) per row, summed / normaliser
lg = f32("logits", (N, V))
ref = f32("ref", (N, V)).detach()
lp, lq = F.log_softmax(lg, -1), F.log_softmax(ref, -1)
loss = (lp.exp() * (lp - lq)).sum() / req["norm"]
loss.backward()
res["kl"], res["kl_grad"] = loss.item(), out(lg.grad)
# the same through torch's own KLDivLoss (input = log pi_ref, target = log pi): an independent formula
res["kl_torch"] = (F.kl_div(lq, lp, reduction="sum", log_target=True) / req["norm"]).item()
print(json.dumps(res))
