"""Language-model evaluation: perplexity and bits per character of a text file.

The text is tokenized exactly as pretraining tokenizes it (`llmlab.pretraining.data.token_array`: line by
line, newlines kept) and scored by `pretrain_data.evaluate_loss`: the mean next-token negative log-likelihood
(nats) over non-overlapping windows of `context` tokens. Then
    perplexity = exp(mean NLL),
    bits per character = mean NLL * tokens / (characters * ln 2)
(Graves 2013, "Generating Sequences With Recurrent Neural Networks", reports text models in bits per
character, which, unlike perplexity, does not depend on the tokenizer). Deviation: the tail shorter than one
window is not scored; bpc counts it at the mean NLL (tokens and characters are those of the whole file).

A model folder is an llmlab causal-LM checkpoint (`llmlab.model.checkpoint`) or a fine-tuned folder whose
task is "lm" (`llmlab.finetuning.methods.load_finetuned`). Precision (`llmlab.model.precision`): in the bf16
modes the linear and embedding weights are stored in bfloat16 and the forward runs under bfloat16 autocast,
as classifier inference does; the cross-entropy is taken on float32 logits. fp32 is the reference numerics.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from types import SimpleNamespace

from torch import Tensor, nn

from llmlab.errors import LlmlabError
from llmlab.model.precision import autocast, resolve_precision, store_weights


class _FinetunedLM(nn.Module):
    """A FinetuneModel (task "lm") seen through the Transformer interface evaluate_loss calls."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: Tensor) -> SimpleNamespace:
        return SimpleNamespace(logits=self.model(input_ids, None))  # (B, T, V)


def load_language_model(model_dir: str | os.PathLike, precision: str = "fp32"):
    """(model with .forward(input_ids).logits, tokenizer, longest context) of an LM folder, in eval mode, its
    weights stored as `precision` (fp32, bf16-mixed, bf16) keeps them for inference.

    Raises:
        LlmlabError: the folder is a classifier, an encoder without causal attention, or unreadable.
    """
    from llmlab.finetuning.adapter import ADAPTER_META, FULL_META

    path = Path(model_dir)
    if (path / ADAPTER_META).is_file() or (path / FULL_META).is_file():
        from llmlab.finetuning.methods import load_finetuned

        ft = load_finetuned(path)
        if ft.task != "lm":
            raise LlmlabError(f"{path}: a '{ft.task}' model; perplexity needs a language model")
        return store_weights(_FinetunedLM(ft).eval(), precision, training=False), ft.tokenizer, ft.max_length
    from llmlab.model.checkpoint import load_model

    model, tokenizer = load_model(path)
    if not model.config.causal:
        raise LlmlabError(f"{path}: a bidirectional encoder; perplexity needs a causal language model")
    return store_weights(model.eval(), precision, training=False), tokenizer, model.config.max_seq_len


def lm_metrics(
    model_dir: str | os.PathLike,
    text_path: str | os.PathLike,
    context: int | None = None,
    precision: str = "fp32",
) -> dict:
    """Mean token NLL, perplexity and bits per character of a language model on a UTF-8 text file.

    Args:
        model_dir: the LM folder.
        text_path: the text file.
        context: tokens per window (default: the model's longest, at most 512).
        precision: fp32, bf16-mixed, bf16 or auto (`llmlab.model.precision`).

    Returns:
        {"model", "data", "tokens", "characters", "context", "precision", "nll", "perplexity", "bpc"}.

    Raises:
        LlmlabError: an unreadable model or text, a text shorter than one window, or an unknown precision
            (or bf16 where the processor has no native bfloat16).
    """
    from llmlab.pretraining.data import evaluate_loss, token_array

    precision = resolve_precision(precision, "cpu")  # evaluate_loss runs on the CPU
    model, tokenizer, longest = load_language_model(model_dir, precision)
    context = min(context or 512, longest)
    text_path = Path(text_path)
    try:
        characters = len(text_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise LlmlabError(f"{text_path}: cannot read text: {e}") from None
    with tempfile.TemporaryDirectory() as cache:
        tokens = token_array([text_path], tokenizer, Path(cache))
    with autocast(precision, "cpu"):
        nll = evaluate_loss(model, tokens, context, max_tokens=len(tokens))
    return {
        "model": Path(model_dir).name,
        "data": str(text_path),
        "tokens": int(len(tokens)),
        "characters": characters,
        "context": context,
        "precision": precision,
        "nll": nll,
        "perplexity": math.exp(nll),
        "bpc": nll * len(tokens) / (characters * math.log(2)),
    }
