"""Position study (d): pictures of what each encoding adds, drawn from the model's own code paths.

- Sinusoidal (Vaswani et al. 2017, section 3.5): the table as a heatmap, and PE(p) · PE(p + k) against the
  offset k, which depends on |k| only and falls off with it.
- ALiBi (Press et al. 2022, Figure 3): the bias matrix -m |i - j| of a few heads under the causal mask.
- T5 (Raffel et al. 2020): the bucket of every (query, key) pair, exact near the diagonal and logarithmic
  further out; and, given a trained model, each head's learned bias against the distance.
- RoPE (Su et al. 2021, section 3.4.3): q · k after rotation against the offset, for q = k = all ones (the
  paper's long-term decay) and the mean over random vectors.

Every function returns a matplotlib Figure (Agg backend) for `Report.figure`.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from llmlab.model.positional.absolute import sinusoidal_table  # noqa: E402
from llmlab.model.positional.alibi import ALiBi  # noqa: E402
from llmlab.model.positional.relative import T5Bias, relative_position_bucket  # noqa: E402
from llmlab.model.positional.rotary import Rotary  # noqa: E402


def sinusoidal_figure(n_positions: int = 128, d_model: int = 128) -> plt.Figure:
    """Left: the (positions x channels) table; right: PE(p) · PE(p + k) against k for p in the middle."""
    table = sinusoidal_table(torch.arange(2 * n_positions), d_model)  # (2N, C)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    image = left.imshow(table[:n_positions].numpy(), aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
    left.set(xlabel="channel", ylabel="position", title="sinusoidal encoding")
    fig.colorbar(image, ax=left)
    middle = n_positions
    offsets = torch.arange(-middle, middle)  # (2N,)
    dots = table[middle + offsets] @ table[middle]  # (2N,)
    right.plot(offsets.numpy(), dots.numpy())
    right.set(
        xlabel="offset k", ylabel=f"PE({middle}) · PE({middle}+k)", title="dot product against distance"
    )
    fig.tight_layout()
    return fig


def alibi_figure(n_heads: int = 8, size: int = 24, heads: tuple[int, ...] = (0, 3, 7)) -> plt.Figure:
    """The causal ALiBi bias (query x key) of a few heads; future keys blank."""
    positions = torch.arange(size)
    bias = ALiBi(n_heads).bias(torch.zeros(1), positions, positions)[0]  # (H, T, T)
    future = positions[None, :] > positions[:, None]  # (T, T)
    fig, axes = plt.subplots(1, len(heads), figsize=(3.4 * len(heads), 3.2))
    for ax, h in zip(axes, heads, strict=True):
        image = ax.imshow(bias[h].masked_fill(future, float("nan")).numpy(), cmap="viridis")
        slope = ALiBi(n_heads).slopes[h]
        ax.set(title=f"head {h + 1}: slope {slope:.4g}", xlabel="key j", ylabel="query i")
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def t5_figure(trained: T5Bias | None = None, size: int = 160, max_distance: int = 512) -> plt.Figure:
    """T5 buckets for every (query, key) pair, bidirectional; with a trained model, its bias per distance."""
    positions = torch.arange(size)
    rel = positions[None, :] - positions[:, None]  # (T, T) key - query
    buckets = relative_position_bucket(rel, bidirectional=True, num_buckets=32, max_distance=128)
    panels = 2 if trained is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.8), squeeze=False)
    image = axes[0, 0].imshow(buckets.numpy(), cmap="tab20b")
    axes[0, 0].set(title="T5 bucket of (query i, key j)", xlabel="key j", ylabel="query i")
    fig.colorbar(image, ax=axes[0, 0], fraction=0.046)
    if trained is not None:
        distance = torch.arange(max_distance)
        ids = relative_position_bucket(
            -distance, not trained.causal, trained.num_buckets, trained.max_distance
        )
        with torch.no_grad():
            bias = trained.relative_attention_bias(ids)  # (distance, H)
        axes[0, 1].plot(distance.numpy(), bias.numpy())
        axes[0, 1].set(title="trained T5 bias per head (past keys)", xlabel="distance i - j", ylabel="bias")
    fig.tight_layout()
    return fig


def rope_figure(head_dim: int = 64, max_offset: int = 512, seed: int = 0) -> plt.Figure:
    """<R(m) q, R(n) k> / <q, k> against the offset n - m, for q = k = all ones (RoFormer's long-term decay)
    and for q = k = one random Gaussian vector."""
    rope = Rotary(head_dim)
    offsets = torch.arange(max_offset + 1)  # (N,)
    start = torch.full((1,), 100)  # the query's position: only the offset matters
    random_q = torch.randn(1, 1, 1, head_dim, generator=torch.Generator().manual_seed(seed))
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for label, q in [("q = k = 1", torch.ones(1, 1, 1, head_dim)), ("q = k random", random_q)]:
        k = q.expand(1, 1, len(offsets), head_dim)  # (1, 1, N, D): the same vector at every offset
        q_rot, k_rot = rope.rotate(q, k, start, start + offsets)  # (1, 1, 1, D), (1, 1, N, D)
        scores = (k_rot @ q_rot.transpose(-2, -1))[0, 0, :, 0]  # (N,)
        ax.plot(offsets.numpy(), (scores / scores[0]).numpy(), label=label)
    ax.set(xlabel="offset n - m", ylabel="q·k relative to offset 0", title=f"RoPE (head size {head_dim})")
    ax.legend()
    fig.tight_layout()
    return fig
