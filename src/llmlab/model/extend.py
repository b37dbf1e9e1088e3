"""Give a trained RoPE model a context-extension method: new `rope_*` config fields, a rebuilt rotation.

RoPE has no parameters, so extending a model changes no weight: the config's `rope_*` fields are replaced
(and validated as a whole, so a stale parameter of the previous method cannot linger) and the model's
positional module is rebuilt from them. `rope_fields` turns command-line values into those fields; the
methods and their parameters are in positional/rope_scaling.py.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from llmlab.errors import LlmlabError
from llmlab.model.positional import build_positional
from llmlab.model.positional.rope_scaling import DEFAULTS, NEEDS_ORIGINAL
from llmlab.model.transformer import Transformer

ROPE_FIELDS = ("rope_scaling", "rope_scaling_factor", *DEFAULTS)
PARAMETERS = {  # --rope-param NAME=VALUE -> ModelConfig field
    "beta_fast": "rope_beta_fast",
    "beta_slow": "rope_beta_slow",
    "attention_factor": "rope_attention_factor",
    "low_freq_factor": "rope_low_freq_factor",
    "high_freq_factor": "rope_high_freq_factor",
}


def rope_fields(
    kind: str | None,
    factor: float | None = None,
    original: int | None = None,
    params: list[str] | None = None,
) -> dict[str, Any]:
    """The ModelConfig `rope_*` fields of a scaling given as command-line values.

    Args:
        kind: linear, ntk, dynamic, yarn, llama3; None gives {} (and nothing else may be set).
        factor: s (required with a kind).
        original: L0, the trained length (dynamic, yarn, llama3; `extend_context` defaults it).
        params: "NAME=VALUE" strings, NAME one of PARAMETERS (beta_fast, beta_slow, attention_factor,
            low_freq_factor, high_freq_factor).

    Raises:
        LlmlabError: a value without a kind, a kind without a factor, or a malformed or unknown parameter.
    """
    if kind is None:
        if factor is not None or original is not None or params:
            raise LlmlabError("--rope-factor, --rope-original-length and --rope-param need --rope-scaling")
        return {}
    if factor is None:
        raise LlmlabError(f"--rope-scaling {kind} needs --rope-factor")
    fields: dict[str, Any] = {"rope_scaling": kind, "rope_scaling_factor": float(factor)}
    if original is not None:
        fields["rope_original_max_position"] = original
    for item in params or []:
        name, sep, value = item.partition("=")
        if not sep or name not in PARAMETERS:
            raise LlmlabError(
                f"--rope-param {item!r}: expected NAME=VALUE, NAME one of {', '.join(PARAMETERS)}"
            )
        try:
            fields[PARAMETERS[name]] = float(value)
        except ValueError:
            raise LlmlabError(f"--rope-param {item!r}: {value!r} is not a number") from None
    return fields


def extend_context(model: Transformer, fields: dict[str, Any]) -> Transformer:
    """Switch `model` (in place) to the scaling `fields` describe; returns it.

    Args:
        model: a RoPE Transformer.
        fields: `rope_*` ModelConfig fields (as `rope_fields` gives); unnamed ones return to their defaults.
            When the method needs L0 and `fields` has none, L0 is the model's current one, else its
            `max_seq_len` (pretraining sets it to the training context).

    Raises:
        LlmlabError: a field that is not a `rope_*` field, or a config that does not validate.
    """
    unknown = sorted(set(fields) - set(ROPE_FIELDS))
    if unknown:
        raise LlmlabError(f"extend_context: not RoPE scaling fields: {', '.join(unknown)}")
    old = model.config
    reset: dict[str, Any] = {"rope_scaling": None, "rope_scaling_factor": 1.0}
    reset |= {name: default for name, (default, _) in DEFAULTS.items()}
    if fields.get("rope_scaling") in NEEDS_ORIGINAL:
        reset["rope_original_max_position"] = old.rope_original_max_position or old.max_seq_len
    model.config = dataclasses.replace(old, **(reset | fields))
    model.pos = build_positional(model.config).to(model.tok_emb.weight.device)
    return model
