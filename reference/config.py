"""Model presets and the exact parameter-count formula.

The shapes of `tiny`, `medium`, `large` and `xlarge` are the seed's (seed-README.md "Model Configurations",
seed-EXECUTION_LOG.md step 2: tiny has 98.9M parameters and a 16,000-token vocabulary). The seed's labels
("124M", "350M", "780M", "1.5B") are kept as `claimed_params` so that `harness configs` can show them next
to the count computed from the shapes; they do not agree, and that is the point of showing both.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int
    max_seq_len: int
    dropout: float = 0.1
    tie_embeddings: bool = True  # the seed's MLX code tied the output head to the token embedding

    def __post_init__(self):
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        for k in ("vocab_size", "d_model", "n_layers", "n_heads", "d_ff", "max_seq_len"):
            if getattr(self, k) <= 0:
                raise ValueError(f"{k} must be positive, got {getattr(self, k)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**d)

    def with_(self, **kw) -> "ModelConfig":
        return replace(self, **kw)


@dataclass(frozen=True)
class Preset:
    name: str
    config: ModelConfig
    claimed_params: str | None  # the seed's label, as written
    claimed_where: str | None
    note: str = ""


PRESETS: dict[str, Preset] = {
    # Small enough to pretrain and fine-tune in minutes on 2 CPU cores (not in the seed).
    "small": Preset(
        "small",
        ModelConfig(vocab_size=4096, d_model=192, n_layers=4, n_heads=6, d_ff=768, max_seq_len=256, dropout=0.0),
        None, None, "project preset for 2-core CPU runs (not in the seed)"),
    # The seed's test model: 12 x 768, vocab 16,000; the 98,916,864 count implies 2,048 learned positions.
    "tiny": Preset(
        "tiny",
        ModelConfig(vocab_size=16000, d_model=768, n_layers=12, n_heads=12, d_ff=3072, max_seq_len=2048),
        "124M / 98.9M", "seed-README project tree (configs/tiny.yaml: 124M); seed-EXECUTION_LOG step 2.1 (98.9M)"),
    "medium": Preset(
        "medium",
        ModelConfig(vocab_size=32000, d_model=1024, n_layers=24, n_heads=16, d_ff=4096, max_seq_len=4096),
        "350M / 371M", "seed-README 'Medium (350M parameters)'; seed-EXECUTION_LOG step 1.3 (371M)"),
    "large": Preset(
        "large",
        ModelConfig(vocab_size=32000, d_model=1536, n_layers=32, n_heads=24, d_ff=6144, max_seq_len=4096),
        "780M", "seed-README 'Large (780M parameters)'"),
    "xlarge": Preset(
        "xlarge",
        ModelConfig(vocab_size=50000, d_model=2048, n_layers=40, n_heads=32, d_ff=8192, max_seq_len=4096),
        "1.5B", "seed-README 'XLarge (1.5B parameters)'"),
}


def get_config(name: str) -> ModelConfig:
    try:
        return PRESETS[name].config
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def param_count(cfg: ModelConfig, *, embeddings: bool = True) -> int:
    """Exact trainable parameter count of `reference.model.GPT(cfg)`.

    Per block: LayerNorm x2 (4d), qkv d*3d + 3d, out-proj d*d + d, MLP d*f + f + f*d + d.
    """
    d, f, L = cfg.d_model, cfg.d_ff, cfg.n_layers
    block = 4 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * f + f + f * d + d)
    n = L * block + 2 * d  # + final LayerNorm
    if embeddings:
        n += cfg.vocab_size * d + cfg.max_seq_len * d
        if not cfg.tie_embeddings:
            n += cfg.vocab_size * d
    elif not cfg.tie_embeddings:
        n += cfg.vocab_size * d  # an untied head is a matmul, not a lookup
    return n


def non_embedding_params(cfg: ModelConfig) -> int:
    """N in the 6N + 12*L*d*T FLOPs-per-token estimate (Kaplan et al. 2020; nanoGPT estimate_mfu).

    The tied head is counted: it is a d x V matmul on every token even though it shares storage
    with the lookup table.
    """
    return param_count(cfg, embeddings=False) + cfg.vocab_size * cfg.d_model


def train_flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Forward + backward FLOPs per token: 6N + 12*L*d*T (PaLM appendix B; nanoGPT)."""
    return 6.0 * non_embedding_params(cfg) + 12.0 * cfg.n_layers * cfg.d_model * seq_len


def forward_flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    return 2.0 * non_embedding_params(cfg) + 4.0 * cfg.n_layers * cfg.d_model * seq_len
