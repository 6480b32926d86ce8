"""Tiny model folders for the backend tests, built in the test (nothing downloaded): a reference checkpoint
(d_model 32, 2 layers, d_ff 4 d) with the project's BPE, and a random Qwen2 folder that transformers saves."""
from __future__ import annotations

import json
from pathlib import Path

BASH = ["#!/bin/bash\necho hello world\n", "for f in *.txt; do\n  wc -l \"$f\"\ndone\n",
        "if [ -z \"$1\" ]; then\n  echo usage >&2\n  exit 1\nfi\n", "grep -rn TODO . | sort | uniq -c\n"]


def tokenizer():
    from reference.tokenizer import train_tokenizer

    return train_tokenizer(BASH * 20, 300, min_frequency=1)


def reference_checkpoint(root: Path, *, d_ff: int = 128, tie: bool = True, seed: int = 1) -> Path:
    from mlx.utils import tree_flatten

    from reference.checkpoint import save_checkpoint
    from reference.config import ModelConfig
    from reference.model import GPT, randomize

    tok = tokenizer()
    cfg = ModelConfig(vocab_size=tok.get_vocab_size(), d_model=32, n_layers=2, n_heads=4, d_ff=d_ff, max_seq_len=128,
                      dropout=0.0, tie_embeddings=tie)
    model = randomize(GPT(cfg), seed, 0.3)
    root.mkdir(parents=True, exist_ok=True)
    tok.save(str(root / "tokenizer.src.json"))
    save_checkpoint(root / "run", 1, weights=dict(tree_flatten(model.parameters())), optimizer={},
                    state={"model_config": cfg.to_dict(), "stage": "pretrain"}, tokenizer_file=root / "tokenizer.src.json")
    return root / "run"


def qwen2_folder(out: Path) -> Path:
    """A random Qwen2ForCausalLM (hidden 32, 2 layers) with a byte-level BPE tokenizer, as save_pretrained writes it."""
    import torch
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    tok = tokenizer()
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=True, bos_token_id=2, eos_token_id=3, initializer_range=0.5)
    Qwen2ForCausalLM(cfg).save_pretrained(out)
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<EOS>", pad_token="<PAD>", unk_token="<UNK>").save_pretrained(out)
    json.loads((out / "config.json").read_text())  # written
    return out
