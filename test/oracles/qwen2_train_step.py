"""One training step of the reference Qwen2: forward, cross-entropy (ignore_index -100), backward,
clip_grad_norm_, AdamW. Input JSON on stdin: config, weights {name: {shape, data}}, ids, targets, opts.
Answers loss, grad norm, gradients and parameters after the step (float64 base64), in float64 maths."""
import json, sys
import torch
import torch.nn.functional as F
from qwen2 import Qwen2, decode_f32, encode

req = json.load(sys.stdin)
torch.set_default_dtype(torch.float64)
cfg, o = req['config'], req['opts']
names = [n for n, _ in req['order']]
weights = {n: decode_f32(req['weights'][n]['data'], req['weights'][n]['shape']).double().requires_grad_(True) for n in names}
model = Qwen2(cfg, weights)
B, T = o['batch'], o['seq']
ids = torch.tensor(req['ids']).view(B, T)
targets = torch.tensor(req['targets'])
logits = model.logits(model.hidden(ids))
loss = F.cross_entropy(logits.reshape(B * T, -1), targets, ignore_index=-100)
loss.backward()
grads = {n: encode(weights[n].grad) for n in names}
params = [weights[n] for n in names]
norm = torch.nn.utils.clip_grad_norm_(params, o['max_norm'])
opt = torch.optim.AdamW(params, lr=o['lr'], betas=(o['beta1'], o['beta2']), eps=o['eps'], weight_decay=o['weight_decay'])
opt.step()
json.dump({'loss': loss.item(), 'norm': norm.item(), 'grads': grads,
           'params': {n: encode(weights[n]) for n in names}}, sys.stdout)
