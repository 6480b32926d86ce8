"""Physical bounds a performance claim must respect: FLOPs for training, bytes for generation, memory
for parameters + optimizer state + activations. Pure arithmetic on reference.config shapes.

Thresholds (used by harness.claims.audit):
- MFU_IMPLAUSIBLE = 0.60. The best model-FLOPs utilisation published for dense transformer training is
  46.2% (PaLM 540B on TPU v4; Chowdhery et al. 2022, table 3) and 54.2% (530B GPT on 2,240 A100s with
  selective recomputation; Korthikanti et al. 2022, abstract), both for models 100x larger than the seed's,
  which use a chip better than a 350M model can. A claim needing more than 60% of peak is implausible;
  more than 100% is impossible.
- MBU_IMPLAUSIBLE = 0.80. Batch-1 decoding reads every weight once per token; memory-bound kernels rarely
  sustain more than ~80% of datasheet bandwidth (STREAM-style copies reach 80-90%), so a claim needing more
  is implausible; more than 100% is impossible.
"""
from __future__ import annotations

from dataclasses import dataclass

from reference.config import ModelConfig, forward_flops_per_token, non_embedding_params, param_count

MFU_IMPLAUSIBLE = 0.60
MBU_IMPLAUSIBLE = 0.80
GiB = 2**30


def training_flops_per_token(cfg: ModelConfig, seq: int | None) -> tuple[float, str]:
    """6N + 12*L*d*T (PaLM appendix B; nanoGPT). With the sequence length unknown, the 6N floor."""
    n = non_embedding_params(cfg)
    if seq:
        return 6.0 * n + 12.0 * cfg.n_layers * cfg.d_model * seq, f"6N + 12LdT with N={n:,}, T={seq}"
    return 6.0 * n, f"6N floor with N={n:,} (sequence length not stated; attention FLOPs left out)"


def utilisation_verdict(fraction: float, implausible_at: float) -> str | None:
    if fraction > 1.0:
        return "impossible"
    if fraction > implausible_at:
        return "implausible"
    return None


# --- memory -------------------------------------------------------------------------------------------

def layer_activation_bytes(cfg: ModelConfig, batch: int, seq: int, elem: int, *, dropout: bool,
                           scores: bool) -> float:
    """Activations one transformer layer keeps for its backward pass.

    Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer Models", eq. 1):
    s*b*h*(34 + 5*a*s/h) bytes with 16-bit activations and 1-byte dropout masks. Generalised to element size
    `elem`: 16 tensors of s*b*h elements (qkv input, Q, K, V, out-proj input, fc1 input, fc2 input (4h),
    GELU input (4h), two LayerNorm inputs) + 2 masks of s*b*h bytes; with `scores` (attention not fused) the
    softmax output and its dropout output (a*s^2*b elements each) + a mask of a*s^2*b bytes.
    fp16: 34 sbh + 5 as^2b; fp32: 66 sbh + 9 as^2b."""
    s, b, h, a = seq, batch, cfg.d_model, cfg.n_heads
    m = 1 if dropout else 0
    out = s * b * h * (16 * elem + 2 * m)
    if scores:
        out += a * s * s * b * ((2 if dropout else 1) * elem + m)
    return float(out)


@dataclass(frozen=True)
class MemoryEstimate:
    label: str
    parts: dict  # name -> bytes
    assumptions: str

    @property
    def total(self) -> float:
        return float(sum(self.parts.values()))

    def describe(self) -> str:
        bits = ", ".join(f"{k} {v / GiB:.2f}" for k, v in self.parts.items())
        return f"{self.label} {self.total / GiB:.1f} GiB ({bits}; {self.assumptions})"


def memory_floor(n_params: int) -> MemoryEstimate:
    """What AdamW training cannot go below: fp32 weights + two fp32 moments (12 bytes/param), nothing else."""
    return MemoryEstimate("floor", {"weights": 4.0 * n_params, "AdamW moments": 8.0 * n_params},
                          "fp32 weights and AdamW moments only; no gradients, activations or logits")


def memory_lean(cfg: ModelConfig, batch: int, seq: int) -> MemoryEstimate:
    """Every common saving at once: full activation checkpointing, 16-bit activations and logits, fused
    attention, no dropout masks; fp32 weights, gradients and AdamW moments (mixed precision keeps them)."""
    n = param_count(cfg)
    L, d = cfg.n_layers, cfg.d_model
    return MemoryEstimate("lean", {
        "weights+grads+moments": 16.0 * n,
        "logits fp16": 2.0 * batch * seq * cfg.vocab_size,
        "checkpointed layer inputs fp16": 2.0 * L * batch * seq * d,
        "one layer recomputed fp16": layer_activation_bytes(cfg, batch, seq, 2, dropout=False, scores=False),
    }, "full checkpointing, fp16 activations and logits, fused attention, no dropout")


def memory_plain(cfg: ModelConfig, batch: int, seq: int, *, fused_attention: bool = False) -> MemoryEstimate:
    """No recomputation, fp32 everywhere, the preset's dropout, attention scores stored unless fused;
    logits and their gradient in fp32."""
    n = param_count(cfg)
    per_layer = layer_activation_bytes(cfg, batch, seq, 4, dropout=cfg.dropout > 0, scores=not fused_attention)
    return MemoryEstimate("plain fp32", {
        "weights+grads+moments": 16.0 * n,
        "activations": cfg.n_layers * per_layer,
        "logits+grad fp32": 2 * 4.0 * batch * seq * cfg.vocab_size,
    }, "no checkpointing, fp32, " + ("fused attention" if fused_attention else "attention scores stored"))


def memory_checkpointed(cfg: ModelConfig, batch: int, seq: int) -> MemoryEstimate:
    """memory_plain with full activation checkpointing: keep each layer's input, recompute one layer."""
    n = param_count(cfg)
    one = layer_activation_bytes(cfg, batch, seq, 4, dropout=cfg.dropout > 0, scores=True)
    return MemoryEstimate("checkpointed fp32", {
        "weights+grads+moments": 16.0 * n,
        "layer inputs": 4.0 * cfg.n_layers * batch * seq * cfg.d_model,
        "one layer recomputed": one,
        "logits+grad fp32": 2 * 4.0 * batch * seq * cfg.vocab_size,
    }, "full checkpointing, fp32, attention scores stored")


# --- generation ---------------------------------------------------------------------------------------

def decode_bytes_per_token(cfg: ModelConfig, context: int, elem: int = 2) -> float:
    """Bytes one batch-1 decode step must read: every weight it multiplies by (non-embedding parameters
    plus the d x V head; one row of each embedding is negligible) + the KV cache (2*L*ctx*d elements)."""
    return elem * (non_embedding_params(cfg) + 2.0 * cfg.n_layers * context * cfg.d_model)


def prefill_flops(cfg: ModelConfig, prompt: int) -> float:
    return prompt * forward_flops_per_token(cfg, prompt)


def matmul_intensity(m: int, k: int, n: int, elem: int) -> float:
    """FLOP per byte of an (m,k)x(k,n) matmul that reads both inputs and writes the output once."""
    return 2.0 * m * k * n / (elem * (m * k + k * n + m * n))
