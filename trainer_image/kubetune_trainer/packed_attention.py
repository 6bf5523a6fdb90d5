"""Attention over packed rows that computes each example's own causal block only.

For a packed row (position ids restarting at every example, no attention mask) transformers'
SDPA attention builds a block-diagonal causal mask over the whole row and computes every
query against every key of the row, masked or not. Without varlen flash attention (on CPU)
that is several times the work of the examples' own causal blocks. This implementation finds
the examples from the position ids, gathers examples of similar length into batches padded
to a multiple of 32 tokens, runs causal SDPA once per such batch and puts the tokens back in
place. The padding sits after an example's last token, where causal attention already hides
it from every real query, so the real tokens' results are exactly those of the example alone.

It is registered with transformers' ``AttentionInterface`` and used by the trainer when it
packs on CPU, for models whose attention is plain causal attention (no sliding window, no
logit soft-capping or sinks). Its mask function only reports padding (as flash attention's
does), so transformers builds no row-sized mask; an unpacked batch with padding falls back
to SDPA with a padding-aware causal mask.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn.functional import scaled_dot_product_attention

NAME = "kubetune_packed_sdpa"
STEP = 32  # examples are batched with others of their length rounded up to this
PLAIN_CAUSAL = frozenset({"llama", "mistral", "qwen2", "qwen3"})
_UNSUPPORTED = ("sliding_window", "softcap", "s_aux", "position_bias")


def supports(config: Any) -> bool:
    """Whether the model's attention is plain causal attention that this can replace."""
    sliding = getattr(config, "sliding_window", None)
    if getattr(config, "use_sliding_window", True) is False:
        sliding = None
    return config.model_type in PLAIN_CAUSAL and sliding is None


def register() -> None:
    """Make :data:`NAME` known to transformers (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, flash_attention_mask

    AttentionInterface.register(NAME, packed_attention_forward)
    AttentionMaskInterface.register(NAME, flash_attention_mask)


def enable(model: Any) -> bool:
    """Use :data:`NAME` for ``model`` (a PEFT or transformers model) if its architecture
    allows; whether it is now in use."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not supports(base.config):
        return False
    register()
    base.set_attn_implementation(NAME)
    return base.config._attn_implementation == NAME


def segments(position_ids: torch.Tensor) -> list[tuple[int, int]]:
    """(start, length) of every example in the flattened ``(batch, length)`` rows: an
    example starts at every row's start and wherever a position does not follow the one
    before it."""
    follows = position_ids[:, 1:] == position_ids[:, :-1] + 1
    starts = torch.ones_like(position_ids, dtype=torch.bool)
    starts[:, 1:] = ~follows
    flat = starts.flatten().nonzero().flatten().tolist()
    ends = [*flat[1:], position_ids.numel()]
    return [(start, end - start) for start, end in zip(flat, ends, strict=True)]


def _bucket_width(length: int, limit: int) -> int:
    """The padded width of an example's batch: a multiple of :data:`STEP` (16 for the
    shortest), so that few widths occur and little is padding."""
    return min(limit, 16 if length <= 16 else -(-length // STEP) * STEP)


def packed_sdpa(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    position_ids: torch.Tensor,
    *,
    scale: float | None,
    dropout: float = 0.0,
) -> torch.Tensor:
    """Causal attention within each packed example. ``query`` is ``(batch, heads, length,
    dim)``, ``key``/``value`` ``(batch, kv_heads, length, dim)``; the result is ``(batch,
    length, heads, dim)``."""
    batch, heads, length, dim = query.shape
    if position_ids.shape[0] != batch:
        position_ids = position_ids.expand(batch, -1)
    spans = segments(position_ids)
    gqa = key.shape[1] != heads
    if len(spans) == batch:  # one example per row: plain causal attention
        out = scaled_dot_product_attention(
            query, key, value, dropout_p=dropout, scale=scale, is_causal=True, enable_gqa=gqa
        )
        return out.transpose(1, 2).contiguous()
    tokens = batch * length
    q, k, v = (t.transpose(1, 2).reshape(tokens, t.shape[1], dim) for t in (query, key, value))
    buckets: dict[int, list[tuple[int, int]]] = {}
    for start, size in spans:
        buckets.setdefault(_bucket_width(size, length), []).append((start, size))
    shapes, indices, reals = [], [], []
    for width, members in sorted(buckets.items()):
        starts = torch.tensor([s for s, _ in members], device=query.device)
        sizes = torch.tensor([n for _, n in members], device=query.device)
        offsets = torch.arange(width, device=query.device)
        indices.append((starts[:, None] + torch.minimum(offsets, sizes[:, None] - 1)).flatten())
        reals.append((offsets < sizes[:, None]).flatten())
        shapes.append((len(members), width))
    index, real = torch.cat(indices), torch.cat(reals)
    # One gather per tensor (and so one scatter in backward), cut into the batches.
    sections = [n * width for n, width in shapes]
    outputs = []
    for parts in zip(*(t.index_select(0, index).split(sections) for t in (q, k, v)), strict=True):
        (examples, width) = shapes[len(outputs)]
        out = scaled_dot_product_attention(
            *(p.view(examples, width, p.shape[1], dim).transpose(1, 2) for p in parts),
            dropout_p=dropout,
            scale=scale,
            is_causal=True,
            enable_gqa=gqa,
        )
        outputs.append(out.transpose(1, 2).reshape(examples * width, heads, dim))
    source = torch.empty(tokens, dtype=torch.long, device=query.device)
    source[index[real]] = real.nonzero().flatten()
    return torch.cat(outputs).index_select(0, source).view(batch, length, heads, dim)


def packed_attention_forward(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature; see the module docstring."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    unsupported = [name for name in _UNSUPPORTED if kwargs.get(name) is not None]
    if unsupported or not getattr(module, "is_causal", True) or is_causal is False:
        raise NotImplementedError(
            f"{NAME} computes plain causal attention only (got {unsupported or 'non-causal'})"
        )
    length = query.shape[2]
    if attention_mask is not None or key.shape[2] != length:
        mask = None
        if attention_mask is not None:  # padding, as (batch, keys), from the mask function
            causal = torch.ones(length, key.shape[2], dtype=torch.bool, device=query.device)
            causal = causal.tril(key.shape[2] - length)
            mask = causal[None, None] & attention_mask[:, None, None, :].bool()
        return sdpa_attention_forward(
            module, query, key, value, mask, dropout=dropout, scaling=scaling, **kwargs
        )
    position_ids = kwargs.get("position_ids")
    if position_ids is None:
        position_ids = torch.arange(length, device=query.device)[None]
    out = packed_sdpa(query, key, value, position_ids, scale=scaling, dropout=dropout)
    return out, None
