"""Non-attention sequence classifiers: order comes from recurrence or convolution, not from an encoding.

`GRUClassifier`: a bidirectional GRU (Cho et al. 2014, "Learning Phrase Representations using RNN
Encoder-Decoder") over the embeddings; the last states of both directions, read at each sequence's true
length (`pack_padded_sequence`), feed a linear layer.
`CNNClassifier`: Kim (2014), "Convolutional Neural Networks for Sentence Classification": 1-D convolutions
of a few widths over the embeddings, ReLU, max over time (padding excluded), a linear layer.

Neither has any position input: the GRU reads tokens in order, and a width-k convolution sees the order
inside each k-window. They are the baselines of the word-order study (`study_word_order.py`) and take the
same `(input_ids, attention_mask)` as its Transformer classifier.

Dimensions: B batch, T tokens, E embedding size, H hidden size, K classes.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence


class GRUClassifier(nn.Module):
    """Embedding -> bidirectional GRU -> [last forward state; last backward state] -> linear."""

    def __init__(self, vocab_size: int, n_classes: int = 2, embed_dim: int = 64, hidden: int = 64):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.gru = nn.GRU(embed_dim, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, n_classes)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """input_ids, attention_mask (B, T) (mask 1 for tokens, 0 for right padding) -> logits (B, K)."""
        lengths = attention_mask.sum(dim=1).clamp(min=1).cpu()  # (B,)
        packed = pack_padded_sequence(self.embed(input_ids), lengths, batch_first=True, enforce_sorted=False)
        _, last = self.gru(packed)  # (2, B, H): forward and backward final states
        return self.head(torch.cat([last[0], last[1]], dim=-1))  # (B, 2H) -> (B, K)


class CNNClassifier(nn.Module):
    """Embedding -> 1-D convolutions of widths `widths` -> ReLU -> masked max over time -> linear."""

    def __init__(
        self,
        vocab_size: int,
        n_classes: int = 2,
        embed_dim: int = 64,
        channels: int = 64,
        widths: tuple[int, ...] = (2, 3, 4),
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, channels, k, padding=k - 1) for k in widths)
        self.head = nn.Linear(channels * len(widths), n_classes)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """input_ids, attention_mask (B, T) (mask 1 for tokens, 0 for right padding) -> logits (B, K)."""
        x = self.embed(input_ids).transpose(1, 2)  # (B, E, T)
        pooled = [
            self._max_over_time(conv(x).relu(), attention_mask, conv.kernel_size[0]) for conv in self.convs
        ]
        return self.head(torch.cat(pooled, dim=-1))  # (B, channels * len(widths)) -> (B, K)

    @staticmethod
    def _max_over_time(h: Tensor, mask: Tensor, width: int) -> Tensor:
        """Max over the outputs (B, C, T + k - 1) whose window touches at least one real token."""
        B, _, T_out = h.shape
        lengths = mask.sum(dim=1)  # (B,)
        valid = torch.arange(T_out, device=h.device)[None, :] < (lengths + width - 1)[:, None]  # (B, T_out)
        return h.masked_fill(~valid[:, None, :], float("-inf")).amax(dim=-1)  # (B, C)
