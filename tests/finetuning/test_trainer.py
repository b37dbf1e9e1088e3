"""The training loop: AdamW groups, accumulation == one big batch, early stopping restores the best weights."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from torch import nn

from llmlab.errors import LlmlabError
from llmlab.finetuning.checkpoint import load_checkpoint
from llmlab.finetuning.data import Collator, Example, read_examples
from llmlab.finetuning.objective import evaluate
from llmlab.finetuning.schedule import build_optimizer
from llmlab.finetuning.trainer import TrainConfig, train
from llmlab.model.config import ModelConfig
from llmlab.model.transformer import Transformer
from llmlab.tokenizer.pipeline import Tokenizer


class TinyClassifier(nn.Module):
    """A stand-in FinetuneModel: a tiny random encoder, [CLS] pooling and a linear head (or an LM)."""

    def __init__(
        self, tokenizer: Tokenizer, task: str = "classification", dropout: float = 0.1, seed: int = 0
    ):
        super().__init__()
        torch.manual_seed(seed)
        causal = task == "lm"
        config = ModelConfig(
            tokenizer.vocab_size,
            d_model=16,
            n_layers=1,
            n_heads=2,
            d_ff=32,
            causal=causal,
            type_vocab_size=0 if causal else 2,
            dropout=dropout,
            tie_embeddings=causal,
        )
        self.base = Transformer(config)
        self.head = nn.Linear(16, 2)
        self.prompt = nn.Parameter(torch.zeros(2, 16))  # a stand-in soft prompt (for the decay groups)
        self.tokenizer, self.task, self.method = tokenizer, task, "full"
        self.base.tok_emb.weight.requires_grad_(False)  # a frozen part, as the adapter methods have

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        out = self.base(input_ids, attention_mask, token_type_ids)
        if self.task == "lm":
            return out.logits  # (B, T, V)
        return self.head(out.last_hidden_state[:, 0] + self.prompt.sum())  # (B, K)

    def trainable_state_dict(self):
        return {n: p.detach().clone() for n, p in self.named_parameters() if p.requires_grad}

    def load_trainable_state_dict(self, sd):
        with torch.no_grad():
            for n, p in self.named_parameters():
                if n in sd:
                    p.copy_(sd[n])


@pytest.fixture(scope="session", name="tokenizer")
def tokenizer_fixture(minilm_dir) -> Tokenizer:
    return Tokenizer.load(minilm_dir / "tokenizer.json")


@pytest.fixture(scope="session", name="sst2_small")
def sst2_small_fixture(shared_data, tmp_path_factory) -> tuple[Path, Path]:
    """64 SST-2 train rows and 64 dev rows, as CSV files."""
    folder = tmp_path_factory.mktemp("sst2")
    for split, n in (("train", 64), ("dev", 64)):
        rows = list(csv.DictReader((shared_data / "sst2" / f"{split}.csv").open(encoding="utf-8")))[:n]
        with (folder / f"{split}.csv").open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, ["text", "label"])
            writer.writeheader()
            writer.writerows(rows)
    return folder / "train.csv", folder / "dev.csv"


def test_weight_decay_groups_leave_out_norms_biases_and_prompts(tokenizer):
    model = TinyClassifier(tokenizer)
    decayed, plain = build_optimizer(model, 1e-3, 0.1).param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert all(p.ndim >= 2 and "prompt" not in names[id(p)] for p in decayed["params"])
    assert {names[id(p)] for p in plain["params"]} >= {"prompt", "head.bias", "base.blocks.0.ln1.weight"}
    assert "base.tok_emb.weight" not in {names[id(p)] for g in (decayed, plain) for p in g["params"]}


def test_accumulated_micro_batches_equal_one_big_batch(tokenizer, sst2_small, tmp_path):
    """One step of 12 examples, whole or as micro-batches of 5, 5, 2 (unequal sizes weigh correctly): the same
    loss and the same gradient (read from AdamW's first moment, 0.1 · g after one step, in the checkpoint)."""
    examples = read_examples(sst2_small[0], max_examples=12)
    results = []
    for batch_size, accum in ((12, 1), (5, 3)):
        model = TinyClassifier(tokenizer, dropout=0.0)  # no dropout: both runs see the same function
        config = TrainConfig(
            lr=1e-2,
            batch_size=batch_size,
            grad_accum=accum,
            max_steps=1,
            warmup_ratio=0.0,
            schedule="constant",
            max_grad_norm=0.0,
            checkpoint_every=1,
        )
        out = train(model, examples, examples[:4], config, tmp_path / f"{batch_size}", progress=False)
        moments = load_checkpoint(tmp_path / f"{batch_size}")["torch"]["optimizer"]["state"]
        results.append((out.step_losses, [moments[i]["exp_avg"] for i in sorted(moments)]))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert loss_a == pytest.approx(loss_b, abs=1e-6)
    assert len(grads_a) == len(grads_b) > 5 and any(g.abs().max() > 1e-4 for g in grads_a)
    for a, b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(a, b, atol=1e-7, rtol=1e-4)


@pytest.mark.slow
def test_early_stopping_stops_and_restores_the_best_weights(tokenizer, sst2_small, tmp_path):
    train_set, dev_set = read_examples(sst2_small[0], 32), read_examples(sst2_small[1])
    model = TinyClassifier(tokenizer)
    config = TrainConfig(
        lr=3e-3,
        batch_size=8,
        epochs=40,
        patience=2,
        metric="loss",
        warmup_ratio=0.0,
        schedule="constant",
        seed=1,
    )
    result = train(model, train_set, dev_set, config, tmp_path, progress=False)
    assert result.stopped_early and result.history[-1]["step"] < 40 * 4
    best = next(r for r in result.history if r["step"] == result.best_step)
    assert best["dev_loss"] == result.best_metric == min(r["dev_loss"] for r in result.history)
    assert result.best_step < result.history[-1]["step"]  # the last weights were worse; the best came back
    collate = Collator(tokenizer, 128, token_types=True)
    final = evaluate(model, dev_set, collate, "classification", 8, torch.device("cpu"))
    assert final["dev_loss"] == pytest.approx(best["dev_loss"], abs=1e-6)


@pytest.mark.slow
def test_lm_task_trains_on_next_token_loss(tokenizer, tmp_path):
    docs = [Example(t, None) for t in ["the cat sat on the mat", "a dog ran", "the sun is hot today"] * 4]
    model = TinyClassifier(tokenizer, task="lm")
    config = TrainConfig(lr=1e-2, batch_size=4, epochs=3, warmup_ratio=0.0)
    result = train(model, docs, docs[:3], config, tmp_path, progress=False)
    assert len(result.history) == 3 and result.history[0]["dev_accuracy"] is None
    assert result.history[-1]["dev_loss"] < result.history[0]["dev_loss"]
    assert result.history[-1]["dev_perplexity"] == pytest.approx(
        2.718281828 ** result.history[-1]["dev_loss"]
    )


@pytest.mark.parametrize(
    "change, message",
    [
        ({"schedule": "step"}, "schedule"),
        ({"batch_size": 0}, "batch_size"),
        ({"metric": "auc"}, "metric"),
        ({"augment_ops": ("delete", "shout")}, "shout"),
        ({"lr": 0.0}, "lr"),
    ],
)
def test_bad_config_is_one_line_error(change, message):
    with pytest.raises(LlmlabError, match=message):
        TrainConfig(**change)


def test_a_second_fresh_run_in_the_same_folder_is_refused(tokenizer, tmp_path):
    docs = [Example("good film", 1), Example("bad film", 0)] * 2
    config = TrainConfig(batch_size=2, max_steps=1, checkpoint_every=1)
    train(TinyClassifier(tokenizer), docs, docs, config, tmp_path, progress=False)
    with pytest.raises(LlmlabError, match="--resume"):
        train(TinyClassifier(tokenizer), docs, docs, config, tmp_path, progress=False)
