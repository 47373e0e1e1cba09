"""PyTorch reference for test/tensor/op-cases.ts: forward value and gradients of sum(out * R).

Reads {"cases": [{op, inputs: [{shape, data}], ints, params, R}], "float32": bool} on stdin (float32 base64),
computes in float64 (in float32 with "float32": where a value depends on float32's range, such as the
overflow of exp) and answers {"results": [{out, grads: [..|null]}]} (float64 base64).
"""
import base64, json, math, sys
import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


def f32(s, shape):
    return torch.from_numpy(np.frombuffer(base64.b64decode(s), dtype=np.float32).astype(np.float64).reshape(shape))


def b64(t):
    return base64.b64encode(np.ascontiguousarray(t.detach().numpy().astype(np.float64)).tobytes()).decode()


def rope_tables(head_dim, max_pos, theta):
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    ang = torch.outer(torch.arange(max_pos).float(), inv)
    return ang.cos().double(), ang.sin().double()


def rope(x, positions, theta, max_pos):
    d = x.shape[-1]
    cos, sin = rope_tables(d, max_pos, theta)
    rows = x.reshape(-1, x.shape[-2], d)
    c = cos[positions].repeat(1, 2)[:, None, :]
    s = sin[positions].repeat(1, 2)[:, None, :]
    x1, x2 = rows[..., : d // 2], rows[..., d // 2 :]
    rot = torch.cat([-x2, x1], dim=-1)
    return (rows * c + rot * s).reshape(x.shape)


def attention(q, k, v, causal, mask):
    B, T, H, D = q.shape
    S, G = k.shape[1], k.shape[2]
    k = k.repeat_interleave(H // G, dim=2)
    v = v.repeat_interleave(H // G, dim=2)
    qh, kh, vh = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    scores = qh @ kh.transpose(-1, -2) / math.sqrt(D)
    allowed = torch.ones(B, 1, T, S, dtype=torch.bool)
    if causal:
        allowed = allowed & torch.ones(T, S, dtype=torch.bool).tril(S - T)
    if mask is not None:
        allowed = allowed & torch.tensor(mask, dtype=torch.bool).reshape(B, 1, 1, S)
    scores = scores.masked_fill(~allowed, float('-inf'))
    p = torch.softmax(scores, dim=-1)
    p = torch.nan_to_num(p, nan=0.0)  # queries that see no key give 0, as ours
    return (p @ vh).transpose(1, 2)


def matmul(x, p):
    a, b = x
    if p['transA']:
        a = a.transpose(-1, -2)
    if p['transB']:
        b = b.transpose(-1, -2)
    return a @ b


OPS = {
    'matmul': lambda x, i, p: matmul(x, p),
    'linear': lambda x, i, p: F.linear(x[0], x[1], x[2]),
    'add': lambda x, i, p: x[0] + x[1],
    'sub': lambda x, i, p: x[0] - x[1],
    'mul': lambda x, i, p: x[0] * x[1],
    'div': lambda x, i, p: x[0] / x[1],
    'affine': lambda x, i, p: x[0] * p['alpha'] + p['beta'],
    'exp': lambda x, i, p: x[0].exp(),
    'log': lambda x, i, p: x[0].log(),
    'sqrt': lambda x, i, p: x[0].sqrt(),
    'square': lambda x, i, p: x[0] * x[0],
    'sum': lambda x, i, p: x[0].sum(dim=p['axis'], keepdim=p['keepdim']),
    'sumall': lambda x, i, p: x[0].sum(),
    'mean': lambda x, i, p: x[0].mean(dim=p['axis'], keepdim=p['keepdim']),
    'max': lambda x, i, p: x[0].max(dim=p['axis'], keepdim=p['keepdim']).values,
    'reshape': lambda x, i, p: x[0].reshape(p['shape']),
    'transpose': lambda x, i, p: x[0].transpose(p['a'], p['b']),
    'permute': lambda x, i, p: x[0].permute(*p['perm']),
    'slice': lambda x, i, p: x[0].narrow(p['axis'], p['start'], p['end'] - p['start']),
    'concat': lambda x, i, p: torch.cat(x, dim=p['axis']),
    'embedding': lambda x, i, p: F.embedding(torch.tensor(i['ids']), x[0]),
    'rmsnorm': lambda x, i, p: x[0] * torch.rsqrt(x[0].pow(2).mean(-1, keepdim=True) + p['eps']) * x[1],
    'rope': lambda x, i, p: rope(x[0], torch.tensor(i['positions']), p['theta'], p['maxPos']),
    'silu': lambda x, i, p: F.silu(x[0]),
    'swiglu': lambda x, i, p: F.silu(x[0]) * x[1],
    'softmax': lambda x, i, p: torch.softmax(x[0], -1),
    'logSoftmax': lambda x, i, p: torch.log_softmax(x[0], -1),
    'logsumexp': lambda x, i, p: torch.logsumexp(x[0], p['axis']),
    'crossEntropy': lambda x, i, p: F.cross_entropy(x[0].reshape(-1, x[0].shape[-1]), torch.tensor(i['targets']),
                                                    ignore_index=-100, reduction='sum' if p['sum'] else 'mean'),
    'linearCrossEntropy': lambda x, i, p: F.cross_entropy(x[0] @ x[1].T, torch.tensor(i['targets']),
                                                          ignore_index=-100, reduction='sum' if p['sum'] else 'mean'),
    'attention': lambda x, i, p: attention(x[0], x[1], x[2], p['causal'], i.get('mask') if i else None),
    'l2normalize': lambda x, i, p: F.normalize(x[0], dim=-1),
    'cosine': lambda x, i, p: (F.normalize(x[0], dim=-1) * F.normalize(x[1], dim=-1)).sum(-1),
    'cosineMatrix': lambda x, i, p: F.normalize(x[0], dim=-1) @ F.normalize(x[1], dim=-1).T,
}


def main():
    req = json.load(sys.stdin)
    dtype = torch.float32 if req.get('float32') else torch.float64
    results = []
    for case in req['cases']:
        xs = [f32(t['data'], t['shape']).to(dtype).requires_grad_(t['grad']) for t in case['inputs']]
        out = OPS[case['op']](xs, case.get('ints') or {}, case.get('params') or {})
        r = f32(case['R'], list(out.shape)).to(dtype)
        (out * r).sum().backward()
        results.append({'out': b64(out), 'shape': list(out.shape),
                        'grads': [b64(x.grad) if x.grad is not None else None for x in xs]})
    json.dump({'results': results}, sys.stdout)


main()
