"""A `harness train` checkpoint as a Hugging Face model folder that transformers' Auto classes and mlx-lm load.

The reference model in eval mode is GPT-2 with exact (erf) GELU: learned positions, pre-LayerNorm (eps 1e-5),
fused qkv with bias, d_ff-wide MLP, output head tied to the token embedding. So the folder is GPT-2's:

    config.json              model_type gpt2, activation_function "gelu" (erf), n_inner = d_ff
    model.safetensors        GPT-2's names and Conv1D layout ((in, out) matrices), fp32
    tokenizer.json           the checkpoint's byte-level BPE with a post-processor that puts <EOS> first,
    tokenizer_config.json    so tokenizer(prompt) gives exactly the ids `harness generate` feeds the model
    generation_config.json   bos = eos = <EOS>, pad = <PAD>

mlx-lm's gpt2 differs in two ways: it uses tanh GELU (nn.gelu_approx) whatever the config says, so its
logits differ slightly from the reference's; and it has no n_inner and no untied head, so a checkpoint with
d_ff != 4 d_model or an untied head is refused in this format. `fmt="gpt_bigcode"` writes mlx-lm's
gpt_bigcode layout instead (exact GELU, n_inner, either head), which mlx-lm runs exactly; transformers reads
that layout's fused attention per head (interleaved), so it is for mlx-lm only.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import UsageError

FORMATS = ("gpt2", "gpt_bigcode")
START = "<EOS>"  # the document separator every prompt starts with (reference.generate.encode_prompt)


def _tensors(weights: dict, n_layers: int, fmt: str, tied: bool) -> dict[str, np.ndarray]:
    """Reference parameter names -> the format's names. GPT-2 stores its linears as Conv1D (in, out),
    gpt_bigcode as nn.Linear (out, in) like MLX."""
    def a(name):
        return np.ascontiguousarray(np.asarray(weights[name], dtype=np.float32))

    conv = fmt == "gpt2"
    pre = "" if fmt == "gpt2" else "transformer."
    out = {f"{pre}wte.weight": a("wte.weight"), f"{pre}wpe.weight": a("wpe.weight"),
           f"{pre}ln_f.weight": a("ln_f.weight"), f"{pre}ln_f.bias": a("ln_f.bias")}
    names = {"ln1": "ln_1", "ln2": "ln_2", "attn.qkv": "attn.c_attn", "attn.proj": "attn.c_proj",
             "mlp.fc": "mlp.c_fc", "mlp.proj": "mlp.c_proj"}
    for i in range(n_layers):
        for ours, theirs in names.items():
            w = a(f"blocks.{i}.{ours}.weight")
            out[f"{pre}h.{i}.{theirs}.weight"] = np.ascontiguousarray(w.T) if conv and w.ndim == 2 else w
            out[f"{pre}h.{i}.{theirs}.bias"] = a(f"blocks.{i}.{ours}.bias")
    if not tied:
        out["lm_head.weight"] = a("lm_head.weight")
    return out


def _config(cfg, fmt: str, eos: int, pad: int | None) -> dict:
    common = {"vocab_size": cfg.vocab_size, "n_positions": cfg.max_seq_len, "n_embd": cfg.d_model,
              "n_layer": cfg.n_layers, "n_head": cfg.n_heads, "n_inner": cfg.d_ff, "activation_function": "gelu",
              "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "layer_norm_epsilon": 1e-5,
              "initializer_range": 0.02, "scale_attn_weights": True, "bos_token_id": eos, "eos_token_id": eos,
              "tie_word_embeddings": cfg.tie_embeddings, "torch_dtype": "float32", "use_cache": True}
    if pad is not None:
        common["pad_token_id"] = pad
    if fmt == "gpt2":
        return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_ctx": cfg.max_seq_len, **common}
    return {"architectures": ["GPTBigCodeForCausalLM"], "model_type": "gpt_bigcode", "multi_query": False, **common}


def _tokenizer_files(tok, out: Path, max_len: int) -> None:
    from tokenizers import processors

    eos = tok.token_to_id(START)
    tok.post_processor = processors.TemplateProcessing(single=f"{START} $A", pair=f"{START} $A {START} $B",
                                                       special_tokens=[(START, eos)])
    tok.save(str(out / "tokenizer.json"))
    specials = {"bos_token": START, "eos_token": START, "unk_token": "<UNK>", "pad_token": "<PAD>"}
    # split_special_tokens: "<EOS>" written in a prompt is text, as reference.tokenizer.encode treats it
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", **specials, "model_max_length": max_len,
        "add_prefix_space": False, "clean_up_tokenization_spaces": False, "split_special_tokens": True},
        indent=2) + "\n")
    (out / "special_tokens_map.json").write_text(json.dumps(specials, indent=2) + "\n")


def export(checkpoint: str, out: str | Path, fmt: str = "gpt2", force: bool = False) -> dict:
    """Write the folder; returns what was written (format, source checkpoint, files)."""
    from mlx.utils import tree_flatten
    from reference.checkpoint import load_for_inference
    from safetensors.numpy import save_file

    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise UsageError(f"--out {out} exists and is not empty; pass an empty or new folder, or --force")
    model, tok, info = load_for_inference(checkpoint)
    cfg = model.config
    if fmt == "gpt2" and (not cfg.tie_embeddings or cfg.d_ff != 4 * cfg.d_model):
        why = "an untied output head" if not cfg.tie_embeddings else f"d_ff={cfg.d_ff} != 4 x d_model={cfg.d_model}"
        raise UsageError(f"checkpoint {info['path']} has {why}, which mlx-lm's gpt2 cannot hold; pass --format "
                         f"gpt_bigcode for a folder mlx-lm runs exactly (transformers would misread its attention)")
    eos = tok.token_to_id(START)
    if eos is None:
        raise UsageError(f"checkpoint {info['path']}'s tokenizer has no {START} token; it was not written by "
                         f"`harness data`")
    out.mkdir(parents=True, exist_ok=True)
    weights = dict(tree_flatten(model.parameters()))
    save_file(_tensors(weights, cfg.n_layers, fmt, cfg.tie_embeddings), str(out / "model.safetensors"),
              metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(_config(cfg, fmt, eos, tok.token_to_id("<PAD>")), indent=2) + "\n")
    gen = {"bos_token_id": eos, "eos_token_id": eos, "pad_token_id": tok.token_to_id("<PAD>")}
    (out / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
    _tokenizer_files(tok, out, cfg.max_seq_len)
    return {"format": fmt, "checkpoint": info["path"], "step": info["step"], "out": str(out),
            "files": sorted(p.name for p in out.iterdir())}
