#!/usr/bin/env python3
"""Plain-NumPy float64 oracle for the Grok-1 / Grok-2 forward pass, read from a GGUF file.

Written from /work/shared/grok-architecture.md sections 2-3 (and 5.2-5.3 for GGUF names and keys,
section 8 for corrections), independently of the Swift code. Conventions followed:

* Both: RMSNorm w * x / sqrt(mean(x^2) + eps) (no +1); sandwich layer (pre- and post-norm around
  attention and around the FFN); embedding x embedding_scale; attention logits q.k x output_scale,
  then cap*tanh(x/cap), causal mask, softmax; GQA query head i -> KV head i // (H/Hkv); RoPE
  rotate-half pairing (i, i+hd/2), inv_freq[j] = base^(-2j/hd), absolute 0-based positions; router
  softmax over all experts, top-k with the raw (NOT renormalised) probabilities as gates; gated
  expert FFN down(gelu(gate(x)) * up(x)); logits = final_norm(h) @ head^T x logit_scale.
* Grok-1 (official JAX code): tanh GELU, no router soft-cap, no final soft-cap, head tied to
  token_embd unless output.weight exists, post-FFN norm `layer_output_norm`.
* Grok-2 (xAI's SGLang path; detected by the dense MLP tensor blk.0.ffn_gate.weight): exact (erf)
  GELU, router soft-cap `grok.router_logit_softcapping`, (dense MLP + MoE) / sqrt(2), attention
  temperature log2(p)/log2(L) applied after the soft-cap for query positions p > L
  (L = `grok.attention.temperature_length`), final soft-cap `grok.final_logit_softcapping`, untied
  output.weight, post-FFN norm `post_ffw_norm`, plain RoPE with `grok.rope.freq_base` (the yarn
  keys llama.cpp's converter writes are ignored).
* Missing multipliers take llama.cpp's defaults for old Grok-1 GGUFs (section 5.2).
Deliberately NOT llama.cpp's behaviour (section 5.5): no top-k renormalisation, router cap applied
for Grok-2, attention temperature applied, no YaRN.

Usage: python3 grok_numpy.py MODEL.gguf --tokens 1,2,3 --out logits.npy
           [--greedy N --greedy-out tokens.npy] [--arch auto|grok1|grok2]
"""
import argparse
import math
import struct
import sys

import numpy as np

# ----------------------------------------------------------------------------------------------
# GGUF reader (v2/v3, little-endian)

_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
           10: "<Q", 11: "<q", 12: "<d"}
STRING, ARRAY = 8, 9
# ggml type -> (name, elements per block, bytes per block)
GGML_TYPES = {0: ("F32", 1, 4), 1: ("F16", 1, 2), 30: ("BF16", 1, 2),
              2: ("Q4_0", 32, 18), 8: ("Q8_0", 32, 34)}


class GGUF:
    def __init__(self, path):
        with open(path, "rb") as f:
            self.buf = f.read()
        self.pos = 0
        if self.buf[:4] != b"GGUF":
            raise ValueError(f"{path}: not a GGUF file")
        self.pos = 4
        self.version = self._scalar("<I")
        if self.version not in (2, 3):
            raise ValueError(f"unsupported GGUF version {self.version}")
        n_tensors, n_kv = self._scalar("<Q"), self._scalar("<Q")
        self.meta = {}
        for _ in range(n_kv):
            key = self._string()
            self.meta[key] = self._value(self._scalar("<I"))
        self.tensors = {}  # name -> (ne fastest-first, ggml type, offset in data section)
        for _ in range(n_tensors):
            name = self._string()
            ne = [self._scalar("<Q") for _ in range(self._scalar("<I"))]
            self.tensors[name] = (ne, self._scalar("<I"), self._scalar("<Q"))
        align = int(self.meta.get("general.alignment", 32))
        self.data_start = (self.pos + align - 1) // align * align

    def _scalar(self, fmt):
        (v,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return v

    def _string(self):
        n = self._scalar("<Q")
        s = self.buf[self.pos:self.pos + n].decode("utf-8", errors="replace")
        self.pos += n
        return s

    def _value(self, vtype):
        if vtype == STRING:
            return self._string()
        if vtype == ARRAY:
            etype, n = self._scalar("<I"), self._scalar("<Q")
            return [self._value(etype) for _ in range(n)]
        return self._scalar(_SCALAR[vtype])

    def has(self, name):
        return name in self.tensors

    def tensor(self, name):
        """Dequantised float64 array in numpy order (ggml ne reversed)."""
        ne, gtype, offset = self.tensors[name]
        if gtype not in GGML_TYPES:
            raise ValueError(f"{name}: unsupported ggml type {gtype}")
        tname, per_block, block_bytes = GGML_TYPES[gtype]
        n = int(np.prod(ne))
        start = self.data_start + offset
        raw = np.frombuffer(self.buf, np.uint8, n // per_block * block_bytes, start)
        if tname == "F32":
            x = raw.view("<f4").astype(np.float64)
        elif tname == "F16":
            x = raw.view("<f2").astype(np.float64)
        elif tname == "BF16":  # bf16 = high half of an f32
            x = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        elif tname == "Q8_0":  # f16 d, 32 x int8 q; value = d * q
            b = raw.reshape(-1, 34)
            d = b[:, :2].copy().view("<f2").astype(np.float64)
            x = (d * b[:, 2:].view(np.int8).astype(np.float64)).reshape(-1)
        else:  # Q4_0: f16 d, 16 bytes; j -> low nibble of byte j, j+16 -> high nibble
            b = raw.reshape(-1, 18)
            d = b[:, :2].copy().view("<f2").astype(np.float64)
            q = b[:, 2:]
            nib = np.concatenate([q & 15, q >> 4], axis=1).astype(np.float64) - 8.0
            x = (d * nib).reshape(-1)
        return x.reshape(ne[::-1])


# ----------------------------------------------------------------------------------------------
# Config

class Config:
    def __init__(self, g, arch="auto"):
        m = lambda k, default=None: g.meta.get("grok." + k, default)
        if arch == "auto":
            arch = "grok2" if g.has("blk.0.ffn_gate.weight") else "grok1"
        self.arch = arch
        self.d = int(m("embedding_length"))
        self.n_layers = int(m("block_count"))
        self.n_head = int(m("attention.head_count"))
        self.n_kv = int(m("attention.head_count_kv", self.n_head))
        self.hd = int(m("attention.key_length", self.d // self.n_head))
        rope_dims = m("rope.dimension_count")
        if rope_dims is not None and int(rope_dims) != self.hd:
            raise ValueError("partial RoPE is not part of Grok")
        self.n_expert = int(m("expert_count"))
        self.n_used = int(m("expert_used_count"))
        self.eps = float(m("attention.layer_norm_rms_epsilon"))
        self.rope_base = float(m("rope.freq_base", 10000.0))
        # llama.cpp defaults for old Grok-1 GGUFs (section 5.2)
        self.embedding_scale = float(m("embedding_scale", 78.38367176906169))
        self.logit_scale = float(m("logit_scale", 0.5773502691896257))
        self.attn_scale = float(m("attention.output_scale", 0.08838834764831845))
        self.attn_cap = float(m("attn_logit_softcapping", 30.0))
        self.final_cap = float(m("final_logit_softcapping", 0.0))
        if arch == "grok2":
            self.gelu = gelu_erf
            self.router_cap = float(m("router_logit_softcapping", 30.0))
            self.temp_len = int(m("attention.temperature_length", 0))  # 0 = off
            self.post_ffn_norm = "post_ffw_norm"
            self.dense_mlp = True
        else:
            self.gelu = gelu_tanh
            self.router_cap = 0.0  # read by llama.cpp but not part of the official Grok-1
            self.temp_len = 0
            self.post_ffn_norm = "layer_output_norm"
            self.dense_mlp = False


# ----------------------------------------------------------------------------------------------
# Math

def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu_erf(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def softcap(x, cap):
    return cap * np.tanh(x / cap) if cap > 0 else x


def rms_norm(x, w, eps):
    return w * x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)


def softmax(x):
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def rope(x, pos, base):
    """x [T, heads, hd]; rotate-half (NeoX) pairing (i, i + hd/2)."""
    hd = x.shape[-1]
    inv_freq = base ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)  # base^(-2j/hd)
    phase = np.concatenate([np.outer(pos, inv_freq)] * 2, axis=1)[:, None, :]  # [T, 1, hd]
    rot = np.concatenate([-x[..., hd // 2:], x[..., :hd // 2]], axis=-1)
    return x * np.cos(phase) + rot * np.sin(phase)


# ----------------------------------------------------------------------------------------------
# Model

class Model:
    def __init__(self, path, arch="auto"):
        self.g = GGUF(path)
        self.cfg = Config(self.g, arch)
        self._w = {}

    def w(self, name):
        if name not in self._w:
            self._w[name] = self.g.tensor(name)
        return self._w[name]

    def attention(self, x, i):
        c, b = self.cfg, f"blk.{i}."
        T = x.shape[0]
        pos = np.arange(T, dtype=np.float64)
        q = (x @ self.w(b + "attn_q.weight").T).reshape(T, c.n_head, c.hd)
        k = (x @ self.w(b + "attn_k.weight").T).reshape(T, c.n_kv, c.hd)
        v = (x @ self.w(b + "attn_v.weight").T).reshape(T, c.n_kv, c.hd)
        q, k = rope(q, pos, c.rope_base), rope(k, pos, c.rope_base)
        group = c.n_head // c.n_kv
        k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)  # head h -> kv h // group
        s = np.einsum("thd,shd->hts", q, k) * c.attn_scale
        s = softcap(s, c.attn_cap)
        if c.temp_len > 0:  # Grok-2: after the soft-cap, query positions p > L
            temp = np.where(pos > c.temp_len,
                            np.log2(np.maximum(pos, 1.0)) / math.log2(c.temp_len), 1.0)
            s = s * temp[None, :, None]
        causal = np.tril(np.ones((T, T), dtype=bool))
        p = softmax(np.where(causal[None], s, -np.inf))
        o = np.einsum("hts,shd->thd", p, v).reshape(T, c.n_head * c.hd)
        return o @ self.w(b + "attn_output.weight").T

    def moe(self, x, i):
        c, b = self.cfg, f"blk.{i}."
        logits = softcap(x @ self.w(b + "ffn_gate_inp.weight").T, c.router_cap)  # [T, E]
        probs = softmax(logits)
        top = np.argsort(-probs, axis=-1, kind="stable")[:, :c.n_used]
        gates = np.zeros_like(probs)  # raw top-k probabilities, not renormalised
        np.put_along_axis(gates, top, np.take_along_axis(probs, top, axis=-1), axis=-1)
        gate = np.einsum("td,efd->etf", x, self.w(b + "ffn_gate_exps.weight"))
        up = np.einsum("td,efd->etf", x, self.w(b + "ffn_up_exps.weight"))
        out = np.einsum("etf,edf->etd", c.gelu(gate) * up, self.w(b + "ffn_down_exps.weight"))
        return np.einsum("te,etd->td", gates, out)

    def dense_mlp(self, x, i):
        b = f"blk.{i}."
        gate = x @ self.w(b + "ffn_gate.weight").T
        up = x @ self.w(b + "ffn_up.weight").T
        return (self.cfg.gelu(gate) * up) @ self.w(b + "ffn_down.weight").T

    def forward(self, tokens):
        """Logits [T, V] (float64) at every position of one full causal forward pass."""
        c = self.cfg
        norm = lambda x, name: rms_norm(x, self.w(name), c.eps)
        h = self.w("token_embd.weight")[np.asarray(tokens)] * c.embedding_scale
        for i in range(c.n_layers):
            b = f"blk.{i}."
            a = self.attention(norm(h, b + "attn_norm.weight"), i)
            h = h + norm(a, b + "attn_output_norm.weight")
            x = norm(h, b + "ffn_norm.weight")
            f = self.moe(x, i)
            if c.dense_mlp:
                f = (self.dense_mlp(x, i) + f) / math.sqrt(2.0)
            h = h + norm(f, b + c.post_ffn_norm + ".weight")
        h = norm(h, "output_norm.weight")
        head = self.w("output.weight" if self.g.has("output.weight") else "token_embd.weight")
        return softcap((h @ head.T) * c.logit_scale, c.final_cap)

    def greedy(self, tokens, n):
        seq = list(tokens)
        for _ in range(n):
            seq.append(int(np.argmax(self.forward(seq)[-1])))
        return seq[len(tokens):]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--tokens", required=True, help="comma-separated token ids")
    ap.add_argument("--out", required=True, help="float32 [T, V] logits (.npy)")
    ap.add_argument("--greedy", type=int, default=0, help="number of greedy tokens")
    ap.add_argument("--greedy-out", help="int32 [N] greedy tokens (.npy)")
    ap.add_argument("--arch", choices=["auto", "grok1", "grok2"], default="auto")
    args = ap.parse_args(argv)
    tokens = [int(t) for t in args.tokens.split(",") if t.strip()]
    model = Model(args.model, args.arch)
    np.save(args.out, model.forward(tokens).astype(np.float32))
    if args.greedy > 0:
        out = model.greedy(tokens, args.greedy)
        if args.greedy_out:
            np.save(args.greedy_out, np.asarray(out, dtype=np.int32))
        else:
            print(",".join(map(str, out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
