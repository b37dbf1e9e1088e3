"""Positional encodings, picked by name in `ModelConfig.positional`.

All share the hooks of `PositionalEncoding` (base.py). One instance per model, built by `build_positional`;
what is shared across layers follows each paper:

| name         | module      | hook(s)          | parameters                    | across layers        |
|--------------|-------------|------------------|-------------------------------|----------------------|
| `none`       | base.py     | -                | -                             | -                    |
| `sinusoidal` | absolute.py | embed            | -                             | input only           |
| `learned`    | absolute.py | embed            | (max_seq_len, C) table        | input only           |
| `relative`   | relative.py | bias + values    | 2 x (2k+1, D) per layer       | per layer (Shaw)     |
| `t5`         | relative.py | bias             | (num_buckets, H)              | shared (T5)          |
| `rope`       | rotary.py   | rotate           | -                             | same rotation        |
| `alibi`      | alibi.py    | bias             | -                             | same slopes          |
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmlab.model.positional.absolute import Learned, Sinusoidal
from llmlab.model.positional.alibi import ALiBi
from llmlab.model.positional.base import NoPositional, PositionalEncoding
from llmlab.model.positional.relative import ShawRelative, T5Bias
from llmlab.model.positional.rotary import Rotary

if TYPE_CHECKING:
    from llmlab.model.config import ModelConfig

POSITIONAL: dict[str, type[PositionalEncoding]] = {
    "none": NoPositional,
    "sinusoidal": Sinusoidal,
    "learned": Learned,
    "relative": ShawRelative,
    "t5": T5Bias,
    "rope": Rotary,
    "alibi": ALiBi,
}


def build_positional(config: ModelConfig) -> PositionalEncoding:
    """The positional encoding `config.positional` names, sized for `config` (validated on construction)."""
    return POSITIONAL[config.positional].from_config(config)


__all__ = [
    "POSITIONAL",
    "ALiBi",
    "Learned",
    "NoPositional",
    "PositionalEncoding",
    "Rotary",
    "ShawRelative",
    "Sinusoidal",
    "T5Bias",
    "build_positional",
]
