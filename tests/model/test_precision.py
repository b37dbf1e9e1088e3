"""Precision: detection (and forcing it off), resolving a name, where weights live, and bf16-mixed against fp32.

Tolerances (measured on an AMD EPYC with avx512_bf16; bfloat16 keeps 8 significant bits, ~0.4% per rounding):
MiniLM's last hidden states under bf16-mixed lie within 2% (relative Frobenius norm) of float32 and every real
token's vector keeps a cosine above 0.999; the GPT-2-shaped LM's logits lie within 2% as well. These tests run
on any processor: without native bfloat16, PyTorch emulates it (slowly, but with the same rounding).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from llmlab.errors import LlmlabError
from llmlab.model import ModelConfig, Transformer
from llmlab.model import precision as mp

SENTENCES = [
    "it 's a charming and often affecting journey .",
    "unflinchingly bleak and desperate",
    "the acting , costumes , music , cinematography and sound are all astounding given the production 's "
    "austere locales .",
    "a gorgeous , witty , seductive movie .",
]


@pytest.fixture
def no_bf16(monkeypatch):
    monkeypatch.setenv(mp.DISABLE_ENV, "1")


def test_forcing_detection_off_falls_back_to_fp32(no_bf16, capsys, monkeypatch):
    monkeypatch.setattr(mp, "_announced", set())  # said once per process: forget earlier tests' choices
    assert mp.bf16_support("cpu") == "none"
    assert mp.resolve_precision("auto", "cpu") == "fp32"
    assert mp.resolve_precision(None, "cpu", announce=False) == "fp32"
    assert mp.resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"  # asked for: runs emulated
    assert "fp32" in capsys.readouterr().err


def test_bf16_without_support_and_unknown_names_are_one_line_errors(no_bf16):
    with pytest.raises(LlmlabError, match="no native bfloat16") as info:
        mp.resolve_precision("bf16", "cpu")
    assert "\n" not in str(info.value)
    for bad in ("fp16", "BF16", "", "bfloat16"):
        with pytest.raises(LlmlabError, match="choose one of auto, fp32, bf16-mixed, bf16"):
            mp.resolve_precision(bad, "cpu")
    assert mp.check_precision("fp16") is not None and mp.check_precision("bf16") is None


def test_detection_agrees_with_the_cpu_flags(monkeypatch):
    monkeypatch.delenv(mp.DISABLE_ENV, raising=False)
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.skip("no /proc/cpuinfo to compare with")
    flags = {w for line in cpuinfo.read_text().splitlines() if line.startswith("flags") for w in line.split()}
    expected = "amx" if "amx_bf16" in flags else "avx512_bf16" if "avx512_bf16" in flags else "none"
    assert mp.bf16_support("cpu") == expected
    assert mp.resolve_precision("auto", "cpu") == ("fp32" if expected == "none" else "bf16-mixed")


def _classifier() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Module()
    model.base = Transformer(ModelConfig(vocab_size=50, d_model=16, n_layers=1, n_heads=2, d_ff=32))
    model.head = nn.Linear(16, 2)
    model.base.requires_grad_(False)
    model.base.blocks[0].attn.q.weight.requires_grad_(True)  # a trained matrix inside the frozen base
    return model


def test_store_weights_puts_each_parameter_where_the_precision_keeps_it():
    model = _classifier()
    dtypes = lambda: {n: p.dtype for n, p in model.named_parameters()}  # noqa: E731
    mp.store_weights(model, "bf16-mixed")
    got = dtypes()
    assert got["base.tok_emb.weight"] == got["base.blocks.0.attn.k.weight"] == torch.bfloat16  # frozen
    assert got["base.blocks.0.attn.k.bias"] == got["base.blocks.0.mlp.fc.weight"] == torch.bfloat16
    assert got["base.blocks.0.attn.q.weight"] == got["head.weight"] == torch.float32  # trained: masters
    assert got["base.blocks.0.ln1.weight"] == got["base.ln_f.bias"] == torch.float32  # norms stay float32
    mp.store_weights(model, "bf16-mixed", training=False)
    assert dtypes()["base.blocks.0.attn.q.weight"] == dtypes()["head.weight"] == torch.bfloat16
    assert dtypes()["base.ln_f.weight"] == torch.float32
    mp.store_weights(model, "bf16")
    assert set(dtypes().values()) == {torch.bfloat16}
    mp.store_weights(model, "fp32")
    assert set(dtypes().values()) == {torch.float32}


def test_autocast_runs_matrix_products_in_bf16_and_fp32_runs_nothing():
    x, w = torch.randn(3, 4), torch.randn(5, 4)
    with mp.autocast("fp32", "cpu"):
        assert torch.nn.functional.linear(x, w).dtype == torch.float32
    for precision in ("bf16-mixed", "bf16"):
        with mp.autocast(precision, "cpu"):
            assert torch.nn.functional.linear(x, w).dtype == torch.bfloat16
    assert mp.optimizer_options("fp32") == {} and mp.optimizer_options("bf16-mixed") == {"fused": True}


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def test_minilm_hidden_states_in_bf16_mixed_stay_within_tolerance_of_fp32(minilm_dir):
    from llmlab.model.hf_import import from_hf

    model, tokenizer = from_hf(minilm_dir)
    tokenizer.enable_padding()
    encodings = tokenizer.encode_batch(SENTENCES)
    ids = torch.tensor([e.ids for e in encodings])  # (B, T)
    mask = torch.tensor([e.attention_mask for e in encodings])
    with torch.no_grad():
        reference = model(ids, mask).last_hidden_state  # (B, T, C)
        mp.store_weights(model, "bf16-mixed", training=False)
        with mp.autocast("bf16-mixed", "cpu"):
            mixed = model(ids, mask).last_hidden_state
    keep = mask.bool()
    assert mixed.dtype == torch.bfloat16
    assert 0 < _relative(mixed[keep], reference[keep]) < 0.02
    cosine = torch.nn.functional.cosine_similarity(mixed[keep].float(), reference[keep], dim=-1)
    assert float(cosine.min()) > 0.999


def test_gpt2_shaped_lm_logits_in_bf16_mixed_stay_within_tolerance_of_fp32():
    config = ModelConfig(
        vocab_size=8000,
        d_model=384,
        n_layers=6,
        n_heads=6,
        max_seq_len=256,
        positional="learned",
        activation="gelu_tanh",
    )
    torch.manual_seed(0)
    model = Transformer(config).eval()
    ids = torch.randint(0, 8000, (2, 256), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = model(ids).logits
        with mp.autocast("bf16-mixed", "cpu"):
            mixed = model(ids).logits
    assert mixed.dtype == torch.bfloat16
    assert 0 < _relative(mixed, reference) < 0.02
