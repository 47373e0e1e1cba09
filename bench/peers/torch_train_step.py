"""Speed peer for bench/train-step.ts: the reference Qwen2 (test/oracles/qwen2.py) in float32, full
training steps (forward, cross-entropy, backward, clip_grad_norm_, AdamW) timed after warm-up.
Reads {config, batch, seq, steps, warmup, threads} on stdin; prints {"seconds": [...]} ."""
import json, os, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'test', 'oracles'))
import torch
import torch.nn.functional as F
from qwen2 import Qwen2

req = json.load(sys.stdin)
torch.set_num_threads(req['threads'])
torch.manual_seed(0)
c = req['config']
d, V, I = c['hidden_size'], c['vocab_size'], c['intermediate_size']
H, G, D = c['num_attention_heads'], c['num_key_value_heads'], c['head_dim']
shapes = {'model.embed_tokens.weight': (V, d), 'model.norm.weight': (d,)}
for l in range(c['num_hidden_layers']):
    p = f'model.layers.{l}.'
    shapes.update({p + 'input_layernorm.weight': (d,), p + 'post_attention_layernorm.weight': (d,),
                   p + 'self_attn.q_proj.weight': (H * D, d), p + 'self_attn.q_proj.bias': (H * D,),
                   p + 'self_attn.k_proj.weight': (G * D, d), p + 'self_attn.k_proj.bias': (G * D,),
                   p + 'self_attn.v_proj.weight': (G * D, d), p + 'self_attn.v_proj.bias': (G * D,),
                   p + 'self_attn.o_proj.weight': (d, H * D), p + 'mlp.gate_proj.weight': (I, d),
                   p + 'mlp.up_proj.weight': (I, d), p + 'mlp.down_proj.weight': (d, I)})
if not c['tie_word_embeddings']:
    shapes['lm_head.weight'] = (V, d)
w = {n: (torch.randn(s) * 0.02).requires_grad_(True) for n, s in shapes.items()}
model = Qwen2(c, w)
opt = torch.optim.AdamW(list(w.values()), lr=1e-4, weight_decay=0.01)
B, T = req['batch'], req['seq']
ids = torch.randint(0, V, (B, T))
targets = torch.randint(0, V, (B * T,))
times = []
for i in range(req['warmup'] + req['steps']):
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model.logits(model.hidden(ids)).reshape(B * T, V), targets)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(list(w.values()), 1.0)
    opt.step()
    if i >= req['warmup']:
        times.append(time.perf_counter() - t0)
json.dump({'seconds': times, 'torch': torch.__version__, 'threads': torch.get_num_threads()}, sys.stdout)
