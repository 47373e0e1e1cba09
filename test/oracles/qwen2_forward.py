"""Reference Qwen2 forward in PyTorch (float64), written from the Hugging Face Qwen2 modelling code's
maths, for checking exported GGUF files in llama.cpp and, later, our own forward.

RMSNorm; RoPE in the rotate_half convention with base rope_theta; grouped-query attention with q/k/v
biases and no output bias; SwiGLU MLP; final RMSNorm; LM head (the embedding matrix when tied).

Weights come from a .safetensors file (F32/F16/BF16), parsed here by hand from the format spec, so this
oracle shares no code with the TypeScript reader.

stdin: {
  "config": path of config.json,
  "weights": path of .safetensors (Hugging Face names),
  "lora": optional {"weights": path of .safetensors with PEFT names (...q_proj.lora_A.weight), "alpha": float},
  "prompts": [[token ids], ...],
  "n_new": number of greedy tokens to generate per prompt (0: none)
}
stdout: {"results": [{"last_hidden": [...] (final-norm hidden state of the prompt's last token),
                      "greedy": [ids], "gaps": [top-1 minus top-2 logit at each greedy step]}]}
"""
import json
import math
import struct
import sys

import numpy as np
import torch

DT = torch.float64


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    data = raw[8 + n :]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        buf = data[b:end]
        shape = e["shape"]
        if e["dtype"] == "F32":
            t = torch.from_numpy(np.frombuffer(buf, dtype="<f4").copy())
        elif e["dtype"] == "F16":
            t = torch.from_numpy(np.frombuffer(buf, dtype="<f2").copy()).to(torch.float32)
        elif e["dtype"] == "BF16":
            t = torch.from_numpy(np.frombuffer(buf, dtype="<i2").copy()).view(torch.bfloat16).to(torch.float32)
        else:
            raise ValueError(f"{path}: dtype {e['dtype']} of {name} not handled")
        out[name] = t.reshape(shape).to(DT)
    return out


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Qwen2:
    def __init__(self, cfg, w):
        self.cfg = cfg
        self.w = w
        self.h = cfg["hidden_size"]
        self.nh = cfg["num_attention_heads"]
        self.nkv = cfg.get("num_key_value_heads", self.nh)
        self.hd = cfg.get("head_dim", self.h // self.nh)
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        self.theta = cfg.get("rope_theta", 10000.0)
        self.layers = cfg["num_hidden_layers"]
        self.head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", False) else w["lm_head.weight"]

    def hidden(self, ids):
        """Final-norm hidden states, one row per position."""
        w = self.w
        T = len(ids)
        x = w["model.embed_tokens.weight"][torch.tensor(ids)]
        inv_freq = 1.0 / (self.theta ** (torch.arange(0, self.hd, 2, dtype=DT) / self.hd))
        freqs = torch.arange(T, dtype=DT)[:, None] * inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        mask = torch.full((T, T), float("-inf"), dtype=DT).triu(1)
        for i in range(self.layers):
            p = f"model.layers.{i}."
            hn = rms_norm(x, w[p + "input_layernorm.weight"], self.eps)
            q = hn @ w[p + "self_attn.q_proj.weight"].T + w[p + "self_attn.q_proj.bias"]
            k = hn @ w[p + "self_attn.k_proj.weight"].T + w[p + "self_attn.k_proj.bias"]
            v = hn @ w[p + "self_attn.v_proj.weight"].T + w[p + "self_attn.v_proj.bias"]
            q = q.view(T, self.nh, self.hd).transpose(0, 1)
            k = k.view(T, self.nkv, self.hd).transpose(0, 1)
            v = v.view(T, self.nkv, self.hd).transpose(0, 1)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            rep = self.nh // self.nkv
            k = k.repeat_interleave(rep, dim=0)
            v = v.repeat_interleave(rep, dim=0)
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.hd) + mask, dim=-1)
            o = (att @ v).transpose(0, 1).reshape(T, self.nh * self.hd)
            x = x + o @ w[p + "self_attn.o_proj.weight"].T
            hn = rms_norm(x, w[p + "post_attention_layernorm.weight"], self.eps)
            g = hn @ w[p + "mlp.gate_proj.weight"].T
            u = hn @ w[p + "mlp.up_proj.weight"].T
            x = x + (torch.nn.functional.silu(g) * u) @ w[p + "mlp.down_proj.weight"].T
        return rms_norm(x, w["model.norm.weight"], self.eps)

    def logits(self, ids):
        return self.hidden(ids) @ self.head.T


def merge_lora(w, lora_path, alpha):
    pairs = {}
    for name, t in read_safetensors(lora_path).items():
        base = name.replace("base_model.model.", "")
        kind = "A" if ".lora_A." in base else "B"
        base = base.replace(".lora_A.weight", ".weight").replace(".lora_B.weight", ".weight")
        pairs.setdefault(base, {})[kind] = t
    for base, ab in pairs.items():
        r = ab["A"].shape[0]
        w[base] = w[base] + (alpha / r) * (ab["B"] @ ab["A"])


def main():
    req = json.load(sys.stdin)
    with open(req["config"]) as f:
        cfg = json.load(f)
    w = read_safetensors(req["weights"])
    if req.get("lora"):
        merge_lora(w, req["lora"]["weights"], req["lora"]["alpha"])
    model = Qwen2(cfg, w)
    results = []
    with torch.no_grad():
        for prompt in req["prompts"]:
            last_hidden = model.hidden(prompt)[-1]
            ids = list(prompt)
            greedy, gaps = [], []
            for _ in range(req.get("n_new", 0)):
                logits = model.logits(ids)[-1]
                top = torch.topk(logits, 2)
                greedy.append(int(top.indices[0]))
                gaps.append(float(top.values[0] - top.values[1]))
                ids.append(greedy[-1])
            results.append({"last_hidden": last_hidden.tolist(), "greedy": greedy, "gaps": gaps})
    json.dump({"results": results}, sys.stdout)


main()
