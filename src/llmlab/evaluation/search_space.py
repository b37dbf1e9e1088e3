"""The search space of `llmlab tune`: one typed `ParamSpec` per hyperparameter, parsed from the command line.

Syntax (one `--param` per hyperparameter): `name=loguniform:LOW:HIGH`, `name=uniform:LOW:HIGH`,
`name=int:LOW:HIGH` or `name=choice:A,B,C`. Each maps onto one Optuna distribution (`suggest_float(log=True)`,
`suggest_float`, `suggest_int`, `suggest_categorical`, as in optuna.trial.Trial); a grid search (Optuna's
`GridSampler`) needs finite values, so ranges are cut into `points` values, evenly spaced (log-spaced for
`loguniform`). Names and value types are checked against the objective's default settings: an unknown name
or a choice that is not of the default's type is a one-line `LlmlabError`. A choice list always gets the
default value added: trial 0 runs the defaults, and Optuna keeps one categorical distribution per parameter.

Default spaces per fine-tuning method follow the usual ranges of the papers' sweeps: LoRA (Hu et al. 2021)
ranks 2-16 and higher learning rates than full fine-tuning; prompt tuning (Lester et al. 2021) and prefix
tuning (Li & Liang 2021) sweep the number of virtual tokens.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from llmlab.errors import LlmlabError

KINDS = ("loguniform", "uniform", "int", "choice")


@dataclass(frozen=True)
class ParamSpec:
    """One hyperparameter's range: `low`..`high` for the numeric kinds, `choices` for "choice"."""

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    choices: tuple = ()

    def __post_init__(self) -> None:
        where = f"--param {self.name}"
        if self.kind not in KINDS:
            raise LlmlabError(f"{where}: unknown kind {self.kind!r} (expected one of {', '.join(KINDS)})")
        if self.kind == "choice":
            if not self.choices or len(set(self.choices)) != len(self.choices):
                raise LlmlabError(f"{where}: choice needs distinct values, got {list(self.choices)}")
            return
        if self.low is None or self.high is None or not self.low < self.high:
            raise LlmlabError(f"{where}: needs LOW < HIGH, got {self.low} and {self.high}")
        if self.kind == "loguniform" and self.low <= 0:
            raise LlmlabError(f"{where}: loguniform needs LOW > 0, got {self.low}")

    def suggest(self, trial) -> Any:
        """The value of this hyperparameter for an Optuna trial (sampled by the study's sampler)."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high))
        return trial.suggest_float(self.name, self.low, self.high, log=self.kind == "loguniform")

    def grid(self, points: int) -> list:
        """Finite values for a grid search: the choices, or `points` evenly spaced values of the range."""
        import numpy as np  # here, so that the command line starts without it

        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int":
            return sorted({int(round(v)) for v in np.linspace(self.low, self.high, points)})
        space = np.geomspace if self.kind == "loguniform" else np.linspace
        return [float(v) for v in space(self.low, self.high, points)]

    def to_dict(self) -> dict:
        return {"kind": self.kind, "low": self.low, "high": self.high, "choices": list(self.choices)}

    @classmethod
    def from_dict(cls, name: str, d: dict) -> ParamSpec:
        return cls(name, d["kind"], d["low"], d["high"], tuple(d["choices"]))


def parse_param(text: str, defaults: dict[str, Any]) -> ParamSpec:
    """Parse one `--param name=kind:...` against the objective's default settings.

    Args:
        text: e.g. "lr=loguniform:1e-5:1e-3", "batch_size=choice:16,32", "lora_rank=int:2:16".
        defaults: the objective's tunable settings and their default values (their types type the choices).

    Raises:
        LlmlabError: malformed text, an unknown name, or values of the wrong type.
    """
    name, sep, rest = text.partition("=")
    kind, _, args = rest.partition(":")
    name, kind = name.strip(), kind.strip()
    if not sep or not name or not args:
        raise LlmlabError(f"--param {text!r}: expected NAME=KIND:ARGS, e.g. lr=loguniform:1e-5:1e-3")
    if name not in defaults:
        raise LlmlabError(f"--param {text!r}: unknown parameter {name!r} (tunable: {', '.join(defaults)})")
    default = defaults[name]
    if kind == "choice":
        return ParamSpec(name, kind, choices=tuple(_typed(v, default, text) for v in args.split(",")))
    bounds = args.split(":")
    if len(bounds) != 2:
        raise LlmlabError(f"--param {text!r}: expected {kind}:LOW:HIGH")
    if kind == "int" and not isinstance(default, int):
        raise LlmlabError(f"--param {text!r}: {name} is not an integer setting")
    if kind in ("uniform", "loguniform") and not isinstance(default, float):
        raise LlmlabError(f"--param {text!r}: {name} is not a real-valued setting (use int: or choice:)")
    number = int if kind == "int" else float
    low, high = (_number(b, number, text) for b in bounds)
    return ParamSpec(name, kind, low, high)


def parse_space(texts: list[str], defaults: dict[str, Any]) -> dict[str, ParamSpec]:
    """The search space of several `--param`s; a name given twice is an error."""
    space: dict[str, ParamSpec] = {}
    for text in texts:
        spec = parse_param(text, defaults)
        if spec.name in space:
            raise LlmlabError(f"--param {text!r}: {spec.name} is given twice")
        space[spec.name] = spec
    return space


def include_defaults(space: dict[str, ParamSpec], defaults: dict[str, Any]) -> dict[str, ParamSpec]:
    """The space with each choice list extended by its default value, so that trial 0 (the defaults) lies in it.

    Optuna stores one categorical distribution per parameter and study; a default outside the choices could not
    be recorded in the same study.
    """
    return {
        name: dataclasses.replace(spec, choices=(*spec.choices, defaults[name]))
        if spec.kind == "choice" and defaults[name] not in spec.choices
        else spec
        for name, spec in space.items()
    }


def _number(text: str, number: type, where: str) -> float | int:
    try:
        return number(text)
    except ValueError:
        raise LlmlabError(f"--param {where!r}: {text!r} is not a valid {number.__name__}") from None


def _typed(text: str, default: Any, where: str) -> Any:
    """A choice value converted to the type of the setting's default (bool accepts true/false)."""
    text = text.strip()
    if isinstance(default, bool):
        if text.lower() not in ("true", "false"):
            raise LlmlabError(f"--param {where!r}: {text!r} is not true or false")
        return text.lower() == "true"
    if isinstance(default, (int, float)):
        return _number(text, type(default), where)
    return text


def space_to_dict(space: dict[str, ParamSpec]) -> dict[str, dict]:
    """A JSON-able form of a space (stored in the study so that workers cannot drift)."""
    return {name: spec.to_dict() for name, spec in space.items()}


def space_from_dict(d: dict[str, dict]) -> dict[str, ParamSpec]:
    """The inverse of `space_to_dict`."""
    return {name: ParamSpec.from_dict(name, spec) for name, spec in d.items()}


_COMMON = {
    "lr": ParamSpec("lr", "loguniform", 1e-5, 1e-3),
    "batch_size": ParamSpec("batch_size", "choice", choices=(16, 32)),
    "weight_decay": ParamSpec("weight_decay", "uniform", 0.0, 0.1),
    "warmup_ratio": ParamSpec("warmup_ratio", "uniform", 0.0, 0.2),
}
_PER_METHOD = {
    "full": {"dropout": ParamSpec("dropout", "uniform", 0.0, 0.3)},
    "probe": {"lr": ParamSpec("lr", "loguniform", 1e-4, 1e-1)},
    "lora": {
        "lr": ParamSpec("lr", "loguniform", 1e-4, 1e-2),
        "lora_rank": ParamSpec("lora_rank", "int", 2, 16),
        "lora_dropout": ParamSpec("lora_dropout", "uniform", 0.0, 0.3),
    },
    "prompt": {
        "lr": ParamSpec("lr", "loguniform", 1e-3, 1e-1),
        "num_virtual_tokens": ParamSpec("num_virtual_tokens", "int", 5, 40),
    },
    "prefix": {
        "lr": ParamSpec("lr", "loguniform", 1e-4, 1e-2),
        "num_virtual_tokens": ParamSpec("num_virtual_tokens", "int", 5, 40),
    },
}


def default_space(method: str) -> dict[str, ParamSpec]:
    """The search space used when no `--param` is given, for a fine-tuning method.

    Raises:
        LlmlabError: an unknown method.
    """
    if method not in _PER_METHOD:
        raise LlmlabError(f"--method {method!r}: unknown method (expected one of {', '.join(_PER_METHOD)})")
    return _COMMON | _PER_METHOD[method]
