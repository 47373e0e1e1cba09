"""Speed peer for bench/gpu.ts: PyTorch on the same machine, on CUDA when torch sees a GPU, else the CPU.

Reads on stdin {parts, threads, reps, warmup, sizes, config, weights: {file, order}, train: {batch, seq, ids,
targets}, gen: {decode, batches, sampled: {batch, temperature}, prompts, starts}}; the weights are the bench's
own, raw little-endian float32 in `order`. Measures (median of `reps` after `warmup`, each run ended by a device
synchronisation):
- torch.matmul n×n×n in f32, f16 and bf16 (TFLOP/s);
- a full f32 training step (forward, cross-entropy, backward, clip_grad_norm_, AdamW) of a Qwen2 written
  on torch ops (eager; scaled_dot_product_attention where this torch has it);
- greedy generation: transformers' Qwen2ForCausalLM.generate (f32) when transformers imports, else the same
  torch Qwen2 in a loop with a KV cache; prefill = 1 new token from the prompts, decode = `decode` new tokens
  from 1-token prompts; and decode at batch `sampled.batch` sampled at `sampled.temperature` from the whole
  vocabulary (no top-k, no top-p).
Prints one JSON object; a part that fails is reported under `errors` and the others still run."""
import json, math, os, resource, sys, time
import numpy as np
import torch
import torch.nn.functional as F

req = json.load(sys.stdin)
dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
cuda = dev.type == 'cuda'
if not cuda:
    torch.set_num_threads(req['threads'])
torch.manual_seed(0)
reps, warmup = req['reps'], req['warmup']
out = {'torch': torch.__version__, 'device': dev.type, 'threads': torch.get_num_threads(),
       'device_name': torch.cuda.get_device_name(0) if cuda else 'cpu', 'transformers': None,
       'transformers_error': None, 'gen_engine': None, 'matmul_tf32': None, 'matmul': {}, 'train': None,
       'gen': None, 'peaks': {}, 'errors': {}, 'seconds': {},
       'peak_kind': 'torch.cuda.max_memory_allocated' if cuda else 'peak RSS of the process (ru_maxrss)'}
if cuda:  # torch's default, left as it is: f32 matmuls in IEEE f32 unless TF32 was allowed
    try:
        out['matmul_tf32'] = 'TF32 allowed' if torch.backends.cuda.matmul.allow_tf32 else 'IEEE f32 (no TF32)'
    except Exception as e:
        out['matmul_tf32'] = f'unknown ({type(e).__name__})'


def sync():
    if cuda:
        torch.cuda.synchronize()


def reset_peak():
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak():
    if cuda:
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def median(xs):
    return sorted(xs)[len(xs) // 2]


def timed(run, n_warmup=warmup, n_reps=reps):
    times = []
    for i in range(n_warmup + n_reps):
        sync()
        t0 = time.perf_counter()
        run()
        sync()
        if i >= n_warmup:
            times.append(time.perf_counter() - t0)
    return times


def part(name, f):
    if name not in req['parts'] and name != 'weights':
        return None
    reset_peak()
    t0 = time.perf_counter()
    try:
        return f()
    except Exception as e:  # one failed part must not lose the others
        out['errors'][name] = f'{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ""}'
        return None
    finally:
        out['seconds'][name] = time.perf_counter() - t0
        out['peaks'][name] = peak()


def matmul():
    for name, dt in (('f32', torch.float32), ('f16', torch.float16), ('bf16', torch.bfloat16)):
        res = out['matmul'].setdefault(name, {})
        for n in req['sizes']:
            try:
                a = torch.randn(n, n, device=dev).to(dt)
                b = torch.randn(n, n, device=dev).to(dt)
                c = torch.empty(n, n, device=dev, dtype=dt)
                torch.matmul(a, b, out=c)
                once = median(timed(lambda: torch.matmul(a, b, out=c), 0, 1))
                inner = max(1, min(50, round(0.2 / max(once, 1e-6))))

                def run():
                    for _ in range(inner):
                        torch.matmul(a, b, out=c)
                res[str(n)] = 2 * n ** 3 * inner / median(timed(run, 0, reps)) / 1e12
            except Exception as e:
                res[str(n)] = None
                out['errors'][f'matmul {name} {n}'] = f'{type(e).__name__}: {str(e).splitlines()[0][:160]}'
            finally:
                a = b = c = None


c = req['config']
V, d, I = c['vocab_size'], c['hidden_size'], c['intermediate_size']
H, G, D = c['num_attention_heads'], c['num_key_value_heads'], c['head_dim']
sdpa = getattr(F, 'scaled_dot_product_attention', None)


def load_weights():
    flat = np.fromfile(req['weights']['file'], dtype='<f4')
    w, at = {}, 0
    for name, shape in req['weights']['order']:
        n = int(np.prod(shape))
        w[name] = torch.from_numpy(flat[at:at + n].reshape(shape)).to(dev)
        at += n
    return w


class Qwen2:
    """The decoder on torch ops (as test/oracles/qwen2.py, on any device and with a KV cache)."""

    def __init__(self, w):
        self.w = w
        inv = 1.0 / (c['rope_theta'] ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
        ang = torch.outer(torch.arange(c['max_position_embeddings']).float(), inv)
        self.cos, self.sin = ang.cos().to(dev), ang.sin().to(dev)

    def rms(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + c['rms_norm_eps']) * w

    def rope(self, x, pos):
        cs = torch.cat([self.cos[pos]] * 2, -1)[None, :, None, :]
        sn = torch.cat([self.sin[pos]] * 2, -1)[None, :, None, :]
        x1, x2 = x[..., : D // 2], x[..., D // 2:]
        return x * cs + torch.cat([-x2, x1], dim=-1) * sn

    def hidden(self, ids, cache=None):
        w = self.w
        B, T = ids.shape
        past = cache[0][0].shape[2] if cache is not None and cache[0] is not None else 0
        pos = torch.arange(past, past + T, device=dev)
        h = F.embedding(ids, w['model.embed_tokens.weight'])
        for l in range(c['num_hidden_layers']):
            p = f'model.layers.{l}.'
            x = self.rms(h, w[p + 'input_layernorm.weight'])
            q = F.linear(x, w[p + 'self_attn.q_proj.weight'], w[p + 'self_attn.q_proj.bias']).view(B, T, H, D)
            k = F.linear(x, w[p + 'self_attn.k_proj.weight'], w[p + 'self_attn.k_proj.bias']).view(B, T, G, D)
            v = F.linear(x, w[p + 'self_attn.v_proj.weight'], w[p + 'self_attn.v_proj.bias']).view(B, T, G, D)
            q, k, v = self.rope(q, pos).transpose(1, 2), self.rope(k, pos).transpose(1, 2), v.transpose(1, 2)
            if cache is not None:
                if cache[l] is not None:
                    k, v = torch.cat([cache[l][0], k], 2), torch.cat([cache[l][1], v], 2)
                cache[l] = (k, v)
            k, v = k.repeat_interleave(H // G, dim=1), v.repeat_interleave(H // G, dim=1)
            causal = T > 1  # with a cache only single-token steps follow the prompt
            if sdpa is not None:
                a = sdpa(q, k, v, is_causal=causal)
            else:
                s = (q @ k.transpose(2, 3)) / math.sqrt(D)
                if causal:
                    s = s.masked_fill(~torch.ones(T, T, dtype=torch.bool, device=dev).tril(), float('-inf'))
                a = torch.softmax(s, -1) @ v
            h = h + F.linear(a.transpose(1, 2).reshape(B, T, H * D), w[p + 'self_attn.o_proj.weight'])
            y = self.rms(h, w[p + 'post_attention_layernorm.weight'])
            g = F.silu(F.linear(y, w[p + 'mlp.gate_proj.weight'])) * F.linear(y, w[p + 'mlp.up_proj.weight'])
            h = h + F.linear(g, w[p + 'mlp.down_proj.weight'])
        return self.rms(h, w['model.norm.weight'])

    def logits(self, hidden):
        head = self.w['model.embed_tokens.weight'] if c['tie_word_embeddings'] else self.w['lm_head.weight']
        return F.linear(hidden, head)


def train(weights):
    t = req['train']
    B, T = t['batch'], t['seq']
    w = {n: x.clone().requires_grad_(True) for n, x in weights.items()}
    model = Qwen2(w)
    opt = torch.optim.AdamW(list(w.values()), lr=1e-4, weight_decay=0.01)
    ids = torch.tensor(t['ids'], device=dev).view(B, T)
    targets = torch.tensor(t['targets'], device=dev)
    losses = []

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model.logits(model.hidden(ids)).reshape(B * T, V), targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(w.values()), 1.0)
        opt.step()
        losses.append(loss.item())
    seconds = timed(step)
    return {'seconds': seconds, 'loss0': losses[0]}


def hf_model(weights):
    import transformers
    from transformers import Qwen2Config, Qwen2ForCausalLM
    cfg = Qwen2Config(vocab_size=V, hidden_size=d, intermediate_size=I, num_hidden_layers=c['num_hidden_layers'],
                      num_attention_heads=H, num_key_value_heads=G,
                      max_position_embeddings=c['max_position_embeddings'], rms_norm_eps=c['rms_norm_eps'],
                      tie_word_embeddings=c['tie_word_embeddings'], use_sliding_window=False,
                      bos_token_id=None, eos_token_id=None, pad_token_id=None)
    # transformers 5 keeps rope_theta in rope_parameters, older versions as an attribute
    rp = getattr(cfg, 'rope_parameters', None)
    if isinstance(rp, dict):
        rp['rope_theta'] = c['rope_theta']
    else:
        cfg.rope_theta = c['rope_theta']
    with torch.device(dev):
        model = Qwen2ForCausalLM(cfg)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [m for m in missing if not (m == 'lm_head.weight' and c['tie_word_embeddings'])]
    if missing or unexpected:
        raise RuntimeError(f'weights do not fit Qwen2ForCausalLM: missing {missing}, unexpected {unexpected}')
    model.eval()
    attn = getattr(model.config, '_attn_implementation', '?')
    return model, f'transformers {transformers.__version__} Qwen2ForCausalLM.generate (f32, {attn} attention)'


def generate_fn(weights):
    """A function (prompts as a [B, P] tensor, new tokens) → new tokens [B, new], and what it is."""
    try:
        model, engine = hf_model(weights)
        import transformers
        out['transformers'] = transformers.__version__

        def run(ids, new, temperature=0.0):
            # top_k=0 and top_p=1 keep the whole vocabulary, as our sampled row draws
            how = dict(do_sample=True, temperature=temperature, top_k=0, top_p=1.0) if temperature > 0 \
                else dict(do_sample=False)
            with torch.no_grad():
                res = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new,
                                     pad_token_id=0, eos_token_id=None, **how)
            return res[:, ids.shape[1]:]
        return run, engine
    except Exception as e:
        out['transformers_error'] = f'{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ""}'
    model = Qwen2(weights)

    def loop(ids, new, temperature=0.0):
        cache = [None] * c['num_hidden_layers']
        toks = []
        with torch.no_grad():
            x = ids
            for _ in range(new):
                logits = model.logits(model.hidden(x, cache)[:, -1])
                nxt = torch.multinomial(torch.softmax(logits / temperature, -1), 1) if temperature > 0 \
                    else logits.argmax(-1, keepdim=True)
                toks.append(nxt)
                x = nxt
        return torch.cat(toks, 1)
    return loop, 'plain PyTorch loop with a KV cache (f32, ' + \
        ('SDPA attention)' if sdpa is not None else 'softmax attention)')


def gen(weights):
    g = req['gen']
    run, engine = generate_fn(weights)
    out['gen_engine'] = engine
    res = {'prefill': {}, 'decode': {}, 'sampled': {}, 'tokens': []}
    for b in g['batches']:
        prompts = torch.tensor(g['prompts'][str(b)], device=dev)
        starts = torch.tensor(g['starts'][str(b)], device=dev)
        res['prefill'][str(b)] = timed(lambda: run(prompts, 1))
        got = []
        res['decode'][str(b)] = timed(lambda: got.append(run(starts, g['decode'])))
        if got[-1].shape[1] != g['decode']:
            raise RuntimeError(f'{engine} made {got[-1].shape[1]} tokens, not {g["decode"]}')
        if b == 1:
            res['tokens'] = got[-1][0].tolist()
        if b == g['sampled']['batch']:
            res['sampled'][str(b)] = timed(lambda: run(starts, g['decode'], g['sampled']['temperature']))
    return res


part('matmul', matmul)
if 'train' in req['parts'] or 'gen' in req['parts']:
    weights = part('weights', load_weights)
    if weights is not None:
        out['train'] = part('train', lambda: train(weights))
        out['gen'] = part('gen', lambda: gen(weights))
json.dump(out, sys.stdout)
