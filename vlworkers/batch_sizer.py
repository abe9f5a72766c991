"""How many rows one `generate` call may take, from the GPU memory this replica has.

A row's memory is a fixed part (its image through the vision towers, the prefill of
~600 prompt tokens) plus the KV cache, which grows by the same bytes per output token.
The engine measures the fixed part once at start with a small probe batch and reads
the per-token part off the model's config, so a caption batch can be several times an
OCR batch on the same card, and a 24 GB card gets smaller batches than an 80 GB one.
An OOM that still happens (fragmentation, an unusually long prompt) lowers the limit
for that token budget for the rest of the run, so one batch pays for it, not every one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Kept free of the budget: the CUDA context, allocator fragmentation, sampling buffers.
HEADROOM = 0.85


def kv_bytes_per_token(text_config: Any, bytes_per_value: int) -> int:
    """Keys and values of every layer for one token of one row."""
    layers = int(text_config.num_hidden_layers)
    heads = int(text_config.num_attention_heads)
    kv_heads = int(getattr(text_config, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(text_config, "head_dim", None) or text_config.hidden_size // heads)
    return 2 * layers * kv_heads * head_dim * bytes_per_value


def memory_budget(free_bytes: int, total_bytes: int, share: float, in_use_bytes: int) -> int:
    """Bytes this replica's batches may take: its share of the card, less what it holds
    already (weights), and never more than is free now (other replicas on the card)."""
    own = total_bytes * min(share, 1.0) - in_use_bytes
    return max(0, int(min(free_bytes, own) * HEADROOM))


@dataclass
class BatchSizer:
    """Rows per generate call, by token limit; `None` limits (CPU) mean no cap."""

    budget_bytes: int | None = None
    row_bytes: float = 0.0  # measured per row at `probe_tokens` output tokens
    probe_tokens: int = 0
    kv_bytes: int = 0  # per output token per row
    _after_oom: dict[int, int] = field(default_factory=dict)

    def rows_per_call(self, max_new_tokens: int) -> int | None:
        limits = [self._after_oom[max_new_tokens]] if max_new_tokens in self._after_oom else []
        if self.budget_bytes is not None:
            extra_tokens = max(0, max_new_tokens - self.probe_tokens)
            per_row = max(1.0, self.row_bytes + self.kv_bytes * extra_tokens)
            limits.append(max(1, int(self.budget_bytes // per_row)))
        return min(limits) if limits else None

    def out_of_memory(self, rows: int, max_new_tokens: int) -> None:
        """A call of `rows` rows did not fit: later calls with this limit take at most half."""
        half = max(1, rows // 2)
        self._after_oom[max_new_tokens] = min(half, self._after_oom.get(max_new_tokens, half))

    def describe(self, token_limits: list[int]) -> str:
        if self.budget_bytes is None:
            return "no memory limit (CPU)"
        rows = ", ".join(f"{t} tokens: {self.rows_per_call(t)}" for t in sorted(token_limits))
        return (
            f"budget {self.budget_bytes / 2**30:.1f} GiB, {self.row_bytes / 2**20:.0f} MiB a row "
            f"+ {self.kv_bytes / 2**10:.0f} KiB a token; rows per call at {rows}"
        )
