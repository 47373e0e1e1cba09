"""A Qwen2 decoder in plain PyTorch, written from the architecture (not transformers), used as the
independent reference for our forward pass, gradients and training step, and as the speed peer."""
import base64, math
import numpy as np
import torch
import torch.nn.functional as F


def decode_f32(s, shape):
    return torch.from_numpy(np.frombuffer(base64.b64decode(s), dtype=np.float32).copy().reshape(shape))


def encode(t, dtype=np.float64):
    return base64.b64encode(np.ascontiguousarray(t.detach().cpu().numpy().astype(dtype)).tobytes()).decode()


def rope_tables(head_dim, max_pos, theta):
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    ang = torch.outer(torch.arange(max_pos).float(), inv)
    return ang.cos(), ang.sin()


def apply_rope(x, cos, sin, positions):
    # x [B, T, H, D]; positions [B, T]
    d = x.shape[-1]
    c = cos[positions].repeat(1, 1, 2)[:, :, None, :].to(x.dtype)
    s = sin[positions].repeat(1, 1, 2)[:, :, None, :].to(x.dtype)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * c + torch.cat([-x2, x1], dim=-1) * s


class Qwen2:
    def __init__(self, cfg, weights):
        self.c = cfg
        self.w = weights  # name -> tensor (leaf, requires_grad as the caller wants)
        self.cos, self.sin = rope_tables(cfg['head_dim'], cfg['max_position_embeddings'], cfg['rope_theta'])

    def rms(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.c['rms_norm_eps']) * w

    def hidden(self, ids):
        c, w = self.c, self.w
        B, T = ids.shape
        H, G, D = c['num_attention_heads'], c['num_key_value_heads'], c['head_dim']
        pos = torch.arange(T)[None, :].expand(B, T)
        h = F.embedding(ids, w['model.embed_tokens.weight'])
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        for l in range(c['num_hidden_layers']):
            p = f'model.layers.{l}.'
            x = self.rms(h, w[p + 'input_layernorm.weight'])
            q = F.linear(x, w[p + 'self_attn.q_proj.weight'], w[p + 'self_attn.q_proj.bias']).view(B, T, H, D)
            k = F.linear(x, w[p + 'self_attn.k_proj.weight'], w[p + 'self_attn.k_proj.bias']).view(B, T, G, D)
            v = F.linear(x, w[p + 'self_attn.v_proj.weight'], w[p + 'self_attn.v_proj.bias']).view(B, T, G, D)
            q, k = apply_rope(q, self.cos, self.sin, pos), apply_rope(k, self.cos, self.sin, pos)
            k, v = k.repeat_interleave(H // G, dim=2), v.repeat_interleave(H // G, dim=2)
            s = (q.transpose(1, 2) @ k.permute(0, 2, 3, 1)) / math.sqrt(D)
            a = torch.softmax(s.masked_fill(~mask, float('-inf')), -1) @ v.transpose(1, 2)
            h = h + F.linear(a.transpose(1, 2).reshape(B, T, H * D), w[p + 'self_attn.o_proj.weight'])
            y = self.rms(h, w[p + 'post_attention_layernorm.weight'])
            g = F.silu(F.linear(y, w[p + 'mlp.gate_proj.weight'])) * F.linear(y, w[p + 'mlp.up_proj.weight'])
            h = h + F.linear(g, w[p + 'mlp.down_proj.weight'])
        return self.rms(h, w['model.norm.weight'])

    def logits(self, hidden):
        head = self.w['model.embed_tokens.weight'] if self.c['tie_word_embeddings'] else self.w['lm_head.weight']
        return F.linear(hidden, head)
