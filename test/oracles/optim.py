"""PyTorch reference for test/tensor/optim.test.ts: torch.optim.AdamW / torch.optim.SGD over several steps,
and torch.nn.utils.clip_grad_norm_.

Input JSON on stdin:
  {"optim": [{kind: "adamw"|"sgd", hyper: {...}, params: [{shape, data}], grads: [[data|null, ...] per step],
              lrs: [lr per step]}],
   "clip": [{grads: [{shape, data}|null], max_norm}]}
(data: float32 base64). Computes in float64 from the float32 values and answers
  {"optim": [{"params": [[b64 per param] per step]}], "clip": [{"norm": float, "grads": [b64|null]}]}
(float64 base64).
"""
import base64, json, sys
import numpy as np
import torch

torch.set_default_dtype(torch.float64)


def f32(s, shape):
    return torch.from_numpy(np.frombuffer(base64.b64decode(s), dtype=np.float32).astype(np.float64).reshape(shape))


def b64(t):
    return base64.b64encode(np.ascontiguousarray(t.detach().numpy().astype(np.float64)).tobytes()).decode()


def run_optim(case):
    params = [f32(p['data'], p['shape']).requires_grad_(True) for p in case['params']]
    h = case['hyper']
    if case['kind'] == 'adamw':
        opt = torch.optim.AdamW(params, lr=case['lrs'][0], **({} if h.get('defaults') else {
            'betas': (h['beta1'], h['beta2']), 'eps': h['eps'], 'weight_decay': h['weight_decay']}))
    else:
        opt = torch.optim.SGD(params, lr=case['lrs'][0], momentum=h['momentum'], weight_decay=h['weight_decay'])
    after = []
    for grads, lr in zip(case['grads'], case['lrs']):
        for g in opt.param_groups:
            g['lr'] = lr
        for p, g in zip(params, grads):
            p.grad = None if g is None else f32(g, p.shape)
        opt.step()
        after.append([b64(p) for p in params])
    return {'params': after}


def run_clip(case):
    params = []
    for g in case['grads']:
        if g is None:
            params.append(torch.zeros(1, requires_grad=True))
        else:
            p = torch.zeros(g['shape'], requires_grad=True)
            p.grad = f32(g['data'], g['shape'])
            params.append(p)
    norm = torch.nn.utils.clip_grad_norm_(params, case['max_norm'])
    return {'norm': norm.item(), 'grads': [None if g is None else b64(p.grad) for p, g in zip(params, case['grads'])]}


req = json.load(sys.stdin)
json.dump({'optim': [run_optim(c) for c in req['optim']], 'clip': [run_clip(c) for c in req['clip']]}, sys.stdout)
