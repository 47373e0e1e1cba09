"""The reference Qwen2 (test/oracles/qwen2.py) in float64 on a checkpoint read from disk, for checking
exported GGUF files in llama.cpp.

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
import struct
import sys

import numpy as np
import torch

from qwen2 import Qwen2

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


def model_config(cfg):
    """config.json with the defaults transformers applies, in the keys qwen2.Qwen2 reads."""
    heads = cfg["num_attention_heads"]
    return {**cfg,
            "num_key_value_heads": cfg.get("num_key_value_heads", heads),
            "head_dim": cfg.get("head_dim", cfg["hidden_size"] // heads),
            "rms_norm_eps": cfg.get("rms_norm_eps", 1e-6),
            "rope_theta": cfg.get("rope_theta", 10000.0),
            "tie_word_embeddings": cfg.get("tie_word_embeddings", False)}


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
    model = Qwen2(model_config(cfg), w)
    hidden = lambda ids: model.hidden(torch.tensor([ids]))[0]
    results = []
    with torch.no_grad():
        for prompt in req["prompts"]:
            last_hidden = hidden(prompt)[-1]
            ids = list(prompt)
            greedy, gaps = [], []
            for _ in range(req.get("n_new", 0)):
                logits = model.logits(hidden(ids))[-1]
                top = torch.topk(logits, 2)
                greedy.append(int(top.indices[0]))
                gaps.append(float(top.values[0] - top.values[1]))
                ids.append(greedy[-1])
            results.append({"last_hidden": last_hidden.tolist(), "greedy": greedy, "gaps": gaps})
    json.dump({"results": results}, sys.stdout)


main()
