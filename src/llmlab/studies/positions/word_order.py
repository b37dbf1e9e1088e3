"""Position study (b): can a model tell a real sentence from the same words locally shuffled?

Task: SST-2 sentences (Socher et al. 2013, GLUE copy; train split for training, dev for evaluation) of at
least 6 words; each appears twice, once as written (label 1) and once with the words inside every window of
3 shuffled (label 0). Tokens are whole words (the data is already lower-cased and PTB-tokenized), so both
copies hold exactly the same multiset of token ids: the only signal is order. A mean-pooled bidirectional
Transformer without a positional encoding is then permutation-invariant (study (a)) and must sit at exactly
50% on the paired dev set; with any encoding it can learn the task. Beside them, a GRU and a 1-D CNN
(`baselines.py`) with no encoding show that recurrence and convolution carry order by construction.
Every model gets the same data, steps, batch size and optimiser (AdamW, warmup then cosine); each batch
holds sentences beside their shuffled copies (see `train_classifier`). Precision (`llmlab.model.precision`):
the models train and are scored in the study's precision, as the fine-tuning loop does it (weights stored as
the precision says, forward under its autocast, the loss on float32 logits, fused AdamW in the bf16 modes).
"""

from __future__ import annotations

import csv
import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmlab.errors import LlmlabError
from llmlab.model import precision as mp
from llmlab.model.config import ModelConfig
from llmlab.model.transformer import Transformer
from llmlab.progress import progress_bar
from llmlab.studies.positions.baselines import CNNClassifier, GRUClassifier

PAD, UNK = 0, 1


@dataclass
class WordOrderSizes:
    """The budget every model of the study gets."""

    train_sentences: int = 20000
    max_words: int = 40  # longer sentences are cut to their first max_words words
    vocab_size: int = 8000
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    steps: int = 1200
    batch_size: int = 64
    lr: float = 1e-3
    window: int = 3  # words are shuffled inside consecutive windows of this size
    seed: int = 0


@dataclass
class WordOrderData:
    train: list[tuple[list[int], int]]  # (token ids, label): 1 original, 0 shuffled
    dev: list[tuple[list[int], int]]
    vocab_size: int


def read_sentences(path: Path, min_words: int = 6) -> list[list[str]]:
    """The `text` column of an SST-2 csv, split into words, keeping sentences of at least `min_words`."""
    try:
        with path.open(encoding="utf-8", newline="") as f:
            texts = [row["text"] for row in csv.DictReader(f)]
    except (OSError, KeyError) as e:
        raise LlmlabError(f"{path}: cannot read SST-2 sentences ({e})") from None
    return [words for words in (t.split() for t in texts) if len(words) >= min_words]


def local_shuffle(words: list, window: int, rng: random.Random) -> list:
    """The words shuffled inside each consecutive `window`; different from the input unless impossible."""
    for _ in range(20):
        out = []
        for i in range(0, len(words), window):
            chunk = words[i : i + window]
            rng.shuffle(chunk)
            out.extend(chunk)
        if out != words:
            return out
    return words


def build_data(sst2_dir: Path, sizes: WordOrderSizes) -> WordOrderData:
    """Word vocabulary from the training sentences, then the (original, shuffled) pairs of both splits."""
    rng = random.Random(sizes.seed)
    train_words = sorted({tuple(w[: sizes.max_words]) for w in read_sentences(sst2_dir / "train.csv")})
    rng.shuffle(train_words)
    train_words = [list(w) for w in train_words[: sizes.train_sentences]]
    dev_words = [w[: sizes.max_words] for w in read_sentences(sst2_dir / "dev.csv")]
    counts = Counter(w for s in train_words for w in s)
    common = [w for w, c in counts.most_common(sizes.vocab_size - 2) if c >= 2]
    vocab = {w: i + 2 for i, w in enumerate(common)}
    return WordOrderData(
        _pairs(train_words, vocab, sizes.window, rng),
        _pairs(dev_words, vocab, sizes.window, rng),
        len(vocab) + 2,
    )


def _pairs(sentences: list[list[str]], vocab: dict[str, int], window: int, rng: random.Random):
    """Both copies of every sentence whose shuffle changes its token ids (e.g. not when all are [UNK])."""
    out = []
    for words in sentences:
        ids = [vocab.get(w, UNK) for w in words]
        shuffled = local_shuffle(ids, window, rng)
        if shuffled != ids:
            out += [(ids, 1), (shuffled, 0)]
    return out


class TransformerClassifier(nn.Module):
    """A bidirectional Transformer encoder, mean-pooled over the real tokens, and a linear layer."""

    def __init__(self, config: ModelConfig, n_classes: int = 2):
        super().__init__()
        self.encoder = Transformer(config)
        self.head = nn.Linear(config.d_model, n_classes)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """input_ids, attention_mask (B, T) -> logits (B, K)."""
        h = self.encoder(input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, C)
        m = attention_mask[..., None].to(h.dtype)  # (B, T, 1)
        return self.head((h * m).sum(dim=1) / m.sum(dim=1))  # (B, C) -> (B, K)


def make_model(kind: str, vocab_size: int, sizes: WordOrderSizes) -> nn.Module:
    """`kind` is a positional encoding name (Transformer classifier), "gru" or "cnn"."""
    if kind == "gru":
        return GRUClassifier(vocab_size, embed_dim=sizes.d_model, hidden=sizes.d_model)
    if kind == "cnn":
        return CNNClassifier(vocab_size, embed_dim=sizes.d_model, channels=sizes.d_model)
    config = ModelConfig(
        vocab_size=vocab_size,
        d_model=sizes.d_model,
        n_layers=sizes.n_layers,
        n_heads=sizes.n_heads,
        positional=kind,
        causal=False,
        tie_embeddings=False,
        max_seq_len=sizes.max_words,
    )
    return TransformerClassifier(config)


def collate(examples: list[tuple[list[int], int]]) -> tuple[Tensor, Tensor, Tensor]:
    """Right-pad to the longest: input_ids (B, T), attention_mask (B, T), labels (B,)."""
    T = max(len(ids) for ids, _ in examples)
    ids = torch.tensor([x + [PAD] * (T - len(x)) for x, _ in examples])
    mask = torch.tensor([[1] * len(x) + [0] * (T - len(x)) for x, _ in examples])
    return ids, mask, torch.tensor([y for _, y in examples])


def train_classifier(
    model: nn.Module,
    data: WordOrderData,
    sizes: WordOrderSizes,
    progress: Callable[[int, int], None],
    precision: str = "fp32",
) -> float:
    """Train on data.train for sizes.steps batches (seeded order) in `precision`; returns the dev accuracy.

    Each batch holds batch_size / 2 sentences, each beside its shuffled copy: the words then carry no
    signal within a batch, and the gradient is the order signal alone. Drawn at random instead, the two
    copies rarely meet, and a Transformer sits at loss ln 2 for thousands of steps (the GRU and CNN do not).
    """
    rng = random.Random(sizes.seed)
    mp.store_weights(model, precision)
    options = mp.optimizer_options(precision)
    optimizer = torch.optim.AdamW(model.parameters(), lr=sizes.lr, weight_decay=0.01, **options)
    warmup = max(1, sizes.steps // 20)
    order = []
    pairs = sizes.batch_size // 2
    model.train()
    for step in range(sizes.steps):
        if len(order) < pairs:
            order = list(range(0, len(data.train), 2))  # the original; its shuffled copy follows it
            rng.shuffle(order)
        batch = [data.train[i + copy] for i in (order.pop() for _ in range(pairs)) for copy in (0, 1)]
        ids, mask, labels = collate(batch)
        scale = min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / sizes.steps))
        for group in optimizer.param_groups:
            group["lr"] = sizes.lr * scale
        with mp.autocast(precision, "cpu"):
            logits = model(ids, mask)  # (B, K)
        loss = F.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        progress(step + 1, sizes.steps)
    with mp.autocast(precision, "cpu"):
        return accuracy(model, data.dev)


@torch.no_grad()
def accuracy(model: nn.Module, examples: list[tuple[list[int], int]], batch_size: int = 256) -> float:
    """Share of `examples` whose argmax class is the label."""
    model.eval()
    correct = 0
    for i in range(0, len(examples), batch_size):
        ids, mask, labels = collate(examples[i : i + batch_size])
        correct += (model(ids, mask).argmax(dim=-1) == labels).sum().item()
    model.train()
    return correct / len(examples)


def word_order_study(
    sst2_dir: Path, kinds: list[str], sizes: WordOrderSizes, progress: bool = True, precision: str = "fp32"
) -> list[dict[str, object]]:
    """Train one classifier per kind (encoding names, "gru", "cnn") on the same data, in `precision` (fp32,
    bf16-mixed, bf16); one row each.

    Returns:
        Rows with kind, dev accuracy, parameter count, and the verdict against the 95% chance band.
    """
    data = build_data(sst2_dir, sizes)
    band = 1.96 * math.sqrt(0.25 / len(data.dev))  # half-width of the 95% interval around 50%
    rows = []
    for kind in kinds:
        torch.manual_seed(sizes.seed)
        model = make_model(kind, data.vocab_size, sizes)
        with progress_bar(f"word order: {kind}", enabled=progress) as bar:
            acc = train_classifier(model, data, sizes, bar, precision)
        verdict = (
            "above chance" if acc > 0.5 + band else ("at chance" if acc >= 0.5 - band else "below chance")
        )
        params = sum(p.numel() for p in model.parameters())
        rows.append({"model": kind, "dev_accuracy": acc, "parameters": params, "verdict": verdict})
    return rows
