"""The fine-tuning methods by name, and the one model they all produce: a base Transformer plus what is trained.

Methods (`METHODS`, the order tables use):
- "full": every weight of the base and the head is trained (Howard & Ruder 2018; Devlin et al. 2019);
- "probe": the base frozen, only the task head trained (a linear probe, Alain & Bengio 2016);
- "prompt": learnable virtual tokens before the input (prompt.py, Lester et al. 2021);
- "prefix": learnable keys/values in every layer (prefix.py, Li & Liang 2021; P-tuning v2);
- "lora": low-rank updates of chosen linear layers (lora.py, Hu et al. 2021).
Each runs for "classification" (a head on the pooled state, classify.py) or "lm" (the base's own LM head).
Reference: HF PEFT's `get_peft_model` over `transformers`' task models, one call per method; the parity tests
in tests/finetune build both from the same weights and compare logits.

Gradient checkpointing: the Transformer has no hook for it, so `enable_gradient_checkpointing` gives each
block an instance `forward` that runs the class's forward under `torch.utils.checkpoint` (non-reentrant, so
gradients reach prefixes and LoRA weights passed in or held inside); parameter names stay as they were.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from llmlab.errors import LlmlabError
from llmlab.finetuning import adapter
from llmlab.finetuning.classify import ClassificationHead, FinetunedClassifier
from llmlab.finetuning.lora import apply_lora, check_lora_settings, merge_lora, unmerge_lora
from llmlab.finetuning.prefix import PrefixEncoder, apply_prefix
from llmlab.finetuning.prompt import PROMPT_INITS, PromptEncoder, apply_prompt
from llmlab.model.checkpoint import load_model
from llmlab.model.extend import ROPE_FIELDS, extend_context
from llmlab.model.transformer import Transformer
from llmlab.tokenizer.pipeline import Tokenizer

METHODS = ("full", "probe", "prompt", "prefix", "lora")
# The peak learning rate each method gets unless one is given (the sources: llmlab.evaluation.compare_methods)
DEFAULT_LR = {"full": 5e-5, "probe": 1e-3, "prompt": 3e-2, "prefix": 1e-3, "lora": 5e-4}
TASKS = ("classification", "lm")


@dataclass
class MethodSettings:
    """The settings of every method (each reads its own); validated on construction."""

    num_virtual_tokens: int = 20  # prompt and prefix
    prompt_init: str = "random"  # "random" | "vocab" | "text"
    prompt_init_text: str | None = None
    prefix_projection: bool = True  # MLP reparameterisation (Li & Liang); False = P-tuning v2
    prefix_hidden: int = 512
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ("q", "v")  # names of Linear modules inside blocks[i].attn / .mlp
    gradient_checkpointing: bool = False
    rope_scaling: dict[str, Any] | None = None  # rope_* config fields set on the base (model/extend.py)

    def __post_init__(self) -> None:
        self.lora_targets = tuple(self.lora_targets)
        if not isinstance(self.num_virtual_tokens, int) or self.num_virtual_tokens < 1:
            raise LlmlabError(f"num_virtual_tokens={self.num_virtual_tokens!r} must be a positive integer")
        if self.prompt_init not in PROMPT_INITS:
            raise LlmlabError(f"prompt_init={self.prompt_init!r}: choose one of {', '.join(PROMPT_INITS)}")
        if self.prompt_init == "text" and not self.prompt_init_text:
            raise LlmlabError("prompt_init='text' needs prompt_init_text")
        if not isinstance(self.prefix_hidden, int) or self.prefix_hidden < 1:
            raise LlmlabError(f"prefix_hidden={self.prefix_hidden!r} must be a positive integer")
        if not isinstance(self.lora_alpha, (int, float)) or self.lora_alpha <= 0:
            raise LlmlabError(f"lora_alpha={self.lora_alpha!r} must be a positive number")
        check_lora_settings(self.lora_targets, self.lora_rank, self.lora_dropout)
        if self.rope_scaling is not None and not set(self.rope_scaling) <= set(ROPE_FIELDS):
            raise LlmlabError(f"rope_scaling={self.rope_scaling!r}: only rope_* model config fields")

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-ready dict."""
        return dataclasses.asdict(self) | {"lora_targets": list(self.lora_targets)}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "method settings") -> MethodSettings:
        """Build from a dict; missing keys take their defaults.

        Raises:
            LlmlabError: `d` is not a dict, has unknown keys, or a value is invalid (names `source`).
        """
        if not isinstance(d, dict):
            raise LlmlabError(f"{source}: method settings must be an object, not {type(d).__name__}")
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise LlmlabError(f"{source}: unknown method settings: {', '.join(unknown)}")
        try:
            return cls(**d)
        except (LlmlabError, TypeError) as e:
            raise LlmlabError(f"{source}: {e}") from None


class FinetuneModel(nn.Module):
    """A base Transformer with a method's trainable parts and a task head; `forward` gives the task's logits."""

    def __init__(
        self,
        base: Transformer,
        tokenizer: Tokenizer,
        task: str,
        labels: list[str],
        method: str,
        settings: MethodSettings,
        head: ClassificationHead | None = None,
        prompt: PromptEncoder | None = None,
        prefix: PrefixEncoder | None = None,
    ):
        super().__init__()
        self.base, self.head, self.prompt, self.prefix = base, head, prompt, prefix
        self.tokenizer, self.task, self.labels, self.method = tokenizer, task, list(labels), method
        self.settings = settings
        self.base_fingerprint, self.base_path = "", ""  # set by build_model / load_finetuned

    @property
    def num_virtual_tokens(self) -> int:
        """Virtual tokens put before the input (prompt tuning), else 0."""
        return 0 if self.prompt is None else self.prompt.num_virtual_tokens

    @property
    def max_length(self) -> int:
        """The longest input (in tokens, special ones included) the model takes."""
        return self.base.config.max_seq_len - self.num_virtual_tokens

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None, token_type_ids: Tensor | None = None):
        """input_ids, attention_mask, token_type_ids (B, T) -> logits (B, K) (classification) or (B, T, V) (lm)."""
        types = token_type_ids if self.base.type_emb is not None else None
        inputs = {"input_ids": input_ids}
        if self.prompt is not None:
            embeds, attention_mask, types = self.prompt.prepend(
                self.base.tok_emb(input_ids), attention_mask, types
            )
            inputs = {"inputs_embeds": embeds}  # (B, P + T, C)
        prefix_kv = None if self.prefix is None else self.prefix()
        out = self.base(**inputs, attention_mask=attention_mask, token_type_ids=types, prefix_kv=prefix_kv)
        if self.head is None:
            return out.logits[:, self.num_virtual_tokens :]  # (B, T, V), virtual positions dropped
        return self.head(out.last_hidden_state, attention_mask)  # (B, K)

    def trainable_state_dict(self) -> dict[str, Tensor]:
        """Copies of every tensor training changes (the method's parameters and the head), by name."""
        return {n: p.detach().clone() for n, p in self.named_parameters() if p.requires_grad}

    def load_trainable_state_dict(self, state: dict[str, Tensor], source: str = "state dict") -> None:
        """Copy tensors from `trainable_state_dict` (or a saved adapter) back in.

        Raises:
            LlmlabError: names or shapes differ from this model's trainable tensors (names `source`).
        """
        params = {n: p for n, p in self.named_parameters() if p.requires_grad}
        if self.method == "full" and not any(n.startswith("base.") for n in state):
            params = {n: p for n, p in params.items() if not n.startswith("base.")}  # the saved head alone
        _check_names(set(params), set(state), source)
        with torch.no_grad():
            for name, p in params.items():
                if p.shape != state[name].shape:
                    raise LlmlabError(
                        f"{source}: {name} has shape {tuple(state[name].shape)}, expected {tuple(p.shape)}"
                    )
                p.copy_(state[name])

    def saved_tensors(self) -> dict[str, Tensor]:
        """What `save` writes: the trainable tensors, prefixes folded, only the head for full fine-tuning."""
        state = self.trainable_state_dict()
        if self.prefix is not None and self.prefix.transform is not None:
            state = {n: t for n, t in state.items() if not n.startswith("prefix.")}
            state["prefix.embedding.weight"] = self.prefix.table().detach().clone()
        if self.method == "full":
            state = {n: t for n, t in state.items() if not n.startswith("base.")}
        return state

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Parameters of the whole model (tied ones once); only those training changes when trainable_only."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def prepare_for_inference(self) -> FinetuneModel:
        """Eval mode, LoRA merged into the weights, prefix MLP folded: same logits, less work per call."""
        merge_lora(self.base)
        if self.prefix is not None:
            self.prefix.fold()
        return self.eval()

    def unmerge(self) -> None:
        """Take merged LoRA updates out of the base weights again (before training further)."""
        unmerge_lora(self.base)

    def save(self, out_dir: str | os.PathLike) -> None:
        """Write the folder `load_finetuned` reads (adapter.py: adapter alone, or the whole model)."""
        adapter.save_finetuned(self, out_dir)


def build_model(
    base: str | Path,
    method: str,
    task: str,
    labels: list[str],
    settings: MethodSettings,
    dropout: float | None = None,
    seed: int = 0,
) -> FinetuneModel:
    """A fresh FinetuneModel: the base loaded, the method applied (freezing what it freezes), a new head.

    Args:
        base: an llmlab model folder, or an HF BERT / GPT-2 folder (converted with `from_hf`).
        method: one of METHODS.
        task: "classification" (a head with len(labels) classes) or "lm" (the base's LM head).
        labels: class names (classification; at least two).
        settings: the method's settings.
        dropout: replaces the base config's dropout and attention dropout (and is the head's); None keeps it.
        seed: seeds the new weights (head, prompt, prefix, LoRA A).

    Raises:
        LlmlabError: an unknown method or task, too few labels, "lm" on a base without an LM head, "probe" on
            "lm", invalid settings, or a base folder that cannot be loaded.
    """
    _check_choice(method, task, labels)
    model, tokenizer, pooler = adapter.load_base(base)
    fingerprint = adapter.base_fingerprint(model)
    if task == "lm" and model.lm_head is None:
        raise LlmlabError(
            f"{base}: task 'lm' needs a model with an LM head; this one is an encoder without one"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ft = _assemble(model, tokenizer, method, task, labels, settings, dropout, pooler)
    ft.base_fingerprint, ft.base_path = fingerprint, str(Path(base).resolve())
    return ft


def load_finetuned(out_dir: str | os.PathLike, base: str | os.PathLike | None = None) -> FinetuneModel:
    """Open a folder written by `FinetuneModel.save` (in eval mode).

    Args:
        out_dir: the fine-tuned folder.
        base: put the adapter on this base instead of the one recorded in adapter.json (it must be the same).

    Raises:
        LlmlabError: a missing or corrupt folder, or an adapter whose base fingerprint differs (names the file).
    """
    saved = adapter.read_finetuned(out_dir)
    meta = saved.meta
    settings = MethodSettings.from_dict(meta["settings"], str(saved.meta_path))
    _check_choice(meta["method"], meta["task"], meta["labels"], str(saved.meta_path))
    if saved.full:
        model, tokenizer = load_model(out_dir)
        ft = _assemble(model, tokenizer, "full", meta["task"], meta["labels"], settings, None, None)
    else:
        base = meta["base"] if base is None else base
        model, tokenizer, _ = adapter.load_base(base)
        adapter.check_base(saved, base, adapter.base_fingerprint(model))
        ft = _assemble(
            model, tokenizer, meta["method"], meta["task"], meta["labels"], settings, None, None, True
        )
    ft.load_trainable_state_dict(saved.tensors, str(saved.weights_path))
    ft.base_fingerprint, ft.base_path = meta["base_fingerprint"], meta["base"]
    return ft.eval()


def load_classifier(out_dir: str | os.PathLike, precision: str = "fp32") -> FinetunedClassifier:
    """A `llmlab.evaluation.predictor.Predictor` over a fine-tuned classification folder (named after the folder).

    `precision` (fp32, bf16-mixed, bf16; see `llmlab.model.precision`) is the one its predictions run in.

    Raises:
        LlmlabError: as `load_finetuned`, or the folder holds a language model.
    """
    model = load_finetuned(out_dir)
    if model.task != "classification":
        raise LlmlabError(f"{out_dir}: a '{model.task}' model, not a classifier")
    return FinetunedClassifier(model.prepare_for_inference(), Path(out_dir).resolve().name, precision)


def enable_gradient_checkpointing(model: Transformer) -> None:
    """Recompute each block's activations in the backward pass instead of keeping them (see module doc)."""
    for block in model.blocks:
        block.forward = partial(checkpoint, type(block).forward.__get__(block), use_reentrant=False)


def set_dropout(model: nn.Module, p: float) -> None:
    """Set every dropout probability of `model` (nn.Dropout modules and attention dropout) to `p`."""
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = p
        if hasattr(m, "attn_dropout") and isinstance(m.attn_dropout, float):
            m.attn_dropout = p


def _assemble(
    model, tokenizer, method, task, labels, settings, dropout, pooler, folded=False
) -> FinetuneModel:
    """Apply `method` to `model` and give it a head; `folded`: the prefix as saved (no MLP)."""
    if settings.rope_scaling:  # before the method: a base extended to a longer context
        extend_context(model, settings.rope_scaling)
    if dropout is not None:
        if not 0 <= dropout < 1:
            raise LlmlabError(f"dropout={dropout!r} must be in [0, 1)")
        set_dropout(model, dropout)
    head = None
    if task == "classification":
        head_dropout = model.config.dropout if dropout is None else dropout
        head = ClassificationHead(model.config.d_model, len(labels), model.config.causal, head_dropout)
        if pooler is not None and head.pooler is not None:
            head.pooler.load_state_dict(
                {"weight": pooler[adapter.POOLER[0]], "bias": pooler[adapter.POOLER[1]]}
            )
    s, prompt, prefix = settings, None, None
    if method != "full":
        model.requires_grad_(False)
    if method == "prompt":
        prompt = apply_prompt(model, tokenizer, s.num_virtual_tokens, s.prompt_init, s.prompt_init_text)
    elif method == "prefix":
        hidden = s.prefix_hidden if s.prefix_projection and not folded else None
        prefix = apply_prefix(model, s.num_virtual_tokens, hidden)
    elif method == "lora":
        apply_lora(model, s.lora_targets, s.lora_rank, s.lora_alpha, s.lora_dropout)
    if s.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    return FinetuneModel(model, tokenizer, task, labels, method, settings, head, prompt, prefix)


def _check_choice(method: str, task: str, labels: list[str], source: str = "build_model") -> None:
    if method not in METHODS:
        raise LlmlabError(f"{source}: unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if task not in TASKS:
        raise LlmlabError(f"{source}: unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if task == "classification" and len(labels) < 2:
        raise LlmlabError(f"{source}: classification needs at least two labels, got {list(labels)}")
    if task == "lm" and method == "probe":
        raise LlmlabError(
            f"{source}: method 'probe' trains a classification head; use it with task classification"
        )


def _check_names(expected: set[str], found: set[str], source: str) -> None:
    missing = sorted(expected - found)
    extra = sorted(found - expected)
    if missing:
        raise LlmlabError(f"{source}: missing {len(missing)} tensors: {', '.join(missing[:3])}")
    if extra:
        raise LlmlabError(f"{source}: unexpected {len(extra)} tensors: {', '.join(extra[:3])}")
