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
task is "lm" (`llmlab.finetuning.methods.load_finetuned`).
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from types import SimpleNamespace

from torch import Tensor, nn

from llmlab.errors import LlmlabError


class _FinetunedLM(nn.Module):
    """A FinetuneModel (task "lm") seen through the Transformer interface evaluate_loss calls."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: Tensor) -> SimpleNamespace:
        return SimpleNamespace(logits=self.model(input_ids, None))  # (B, T, V)


def load_language_model(model_dir: str | os.PathLike):
    """(model with .forward(input_ids).logits, tokenizer, longest context) of an LM folder.

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
        return _FinetunedLM(ft).eval(), ft.tokenizer, ft.max_length
    from llmlab.model.checkpoint import load_model

    model, tokenizer = load_model(path)
    if not model.config.causal:
        raise LlmlabError(f"{path}: a bidirectional encoder; perplexity needs a causal language model")
    return model, tokenizer, model.config.max_seq_len


def lm_metrics(
    model_dir: str | os.PathLike, text_path: str | os.PathLike, context: int | None = None
) -> dict:
    """Mean token NLL, perplexity and bits per character of a language model on a UTF-8 text file.

    Args:
        model_dir: the LM folder.
        text_path: the text file.
        context: tokens per window (default: the model's longest, at most 512).

    Returns:
        {"model", "data", "tokens", "characters", "context", "nll", "perplexity", "bpc"}.

    Raises:
        LlmlabError: an unreadable model or text, or a text shorter than one window.
    """
    from llmlab.pretraining.data import evaluate_loss, token_array

    model, tokenizer, longest = load_language_model(model_dir)
    context = min(context or 512, longest)
    text_path = Path(text_path)
    try:
        characters = len(text_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise LlmlabError(f"{text_path}: cannot read text: {e}") from None
    with tempfile.TemporaryDirectory() as cache:
        tokens = token_array([text_path], tokenizer, Path(cache))
    nll = evaluate_loss(model, tokens, context, max_tokens=len(tokens))
    return {
        "model": Path(model_dir).name,
        "data": str(text_path),
        "tokens": int(len(tokens)),
        "characters": characters,
        "context": context,
        "nll": nll,
        "perplexity": math.exp(nll),
        "bpc": nll * len(tokens) / (characters * math.log(2)),
    }
