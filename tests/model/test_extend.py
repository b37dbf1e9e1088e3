"""Extending a trained RoPE model: `extend_context`, `rope_fields`, and the --rope-* flags of pretrain and finetune."""

from __future__ import annotations

import json

import pytest
import torch

from llmlab.cli import main
from llmlab.errors import LlmlabError
from llmlab.model import ModelConfig, Transformer
from llmlab.model.checkpoint import load_model, save_model
from llmlab.model.extend import extend_context, rope_fields
from llmlab.model.positional.rotary import Rotary
from llmlab.stdlib_text import demo_corpus
from llmlab.tokenizer.train import train_tokenizer


def tiny(**overrides) -> Transformer:
    torch.manual_seed(0)
    settings = dict(vocab_size=300, d_model=32, n_layers=1, n_heads=4, max_seq_len=32) | overrides
    return Transformer(ModelConfig(**settings)).eval()


def test_extend_context_changes_the_rotation_and_no_weight():
    model = tiny()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    ids = torch.randint(0, 300, (1, 40))
    before = model(ids).logits
    extend_context(model, rope_fields("yarn", 4.0))
    assert model.config.rope_original_max_position == 32  # defaults to max_seq_len, the trained context
    expected = Rotary.from_config(model.config)
    assert torch.equal(model.pos.inv_freq, expected.inv_freq) and model.pos.attention_factor > 1
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())
    assert not torch.allclose(model(ids).logits, before)
    extend_context(model, {})  # back to plain RoPE: yarn's parameters do not linger
    assert model.config.rope_scaling is None and model.config.rope_original_max_position is None
    assert torch.allclose(model(ids).logits, before)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: rope_fields(None, 2.0), "need --rope-scaling"),
        (lambda: rope_fields("yarn"), "--rope-scaling yarn needs --rope-factor"),
        (lambda: rope_fields("yarn", 4.0, params=["beta=3"]), "--rope-param 'beta=3': expected NAME=VALUE"),
        (lambda: rope_fields("yarn", 4.0, params=["beta_fast=x"]), "'x' is not a number"),
        (lambda: extend_context(tiny(), {"d_model": 64}), "not RoPE scaling fields: d_model"),
        (lambda: extend_context(tiny(), rope_fields("linear", 1.0)), "needs rope_scaling_factor > 1"),
        (
            lambda: extend_context(tiny(positional="alibi"), rope_fields("ntk", 2.0)),
            "needs positional='rope'",
        ),
    ],
)
def test_bad_extensions_are_one_line_errors(call, message):
    with pytest.raises(LlmlabError) as e:
        call()
    assert "\n" not in str(e.value) and message in str(e.value)


@pytest.fixture(scope="module")
def text_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("text")
    lines = demo_corpus()
    (folder / "train.txt").write_text("\n".join(lines[:4000]), encoding="utf-8")
    (folder / "valid.txt").write_text("\n".join(lines[4000:4600]), encoding="utf-8")
    train_tokenizer("bpe", lines[:3000], 300, workers=1).save(folder / "tokenizer.json")
    return folder


def test_pretrain_flags_put_the_scaling_in_the_config(text_files, tmp_path):
    f = text_files
    code = main(
        [
            "pretrain",
            "--train",
            str(f / "train.txt"),
            "--valid",
            str(f / "valid.txt"),
            "--tokenizer",
            str(f / "tokenizer.json"),
            "-o",
            str(tmp_path / "run"),
            "--steps",
            "2",
            "--context",
            "16",
            "--batch-size",
            "2",
            "--d-model",
            "16",
            "--n-layers",
            "1",
            "--n-heads",
            "2",
            "--warmup",
            "0",
            "--quiet",
            "--rope-scaling",
            "yarn",
            "--rope-factor",
            "4",
            "--rope-param",
            "beta_fast=16",
        ]
    )
    assert code == 0
    config = json.loads((tmp_path / "run" / "checkpoints" / "step-000002" / "config.json").read_text())
    assert (config["rope_scaling"], config["rope_scaling_factor"]) == ("yarn", 4.0)
    assert (config["rope_original_max_position"], config["rope_beta_fast"]) == (16, 16.0)


def test_finetune_lm_extends_the_base_and_its_saved_model_keeps_the_scaling(text_files, tmp_path, capsys):
    from llmlab.tokenizer.pipeline import Tokenizer

    tokenizer = Tokenizer.load(text_files / "tokenizer.json")
    save_model(tmp_path / "base", tiny(vocab_size=tokenizer.vocab_size, max_seq_len=16), tokenizer)
    code = main(
        [
            "finetune",
            "--base",
            str(tmp_path / "base"),
            "--task",
            "lm",
            "--method",
            "full",
            "--train",
            str(text_files / "valid.txt"),
            "--dev",
            str(text_files / "valid.txt"),
            "-o",
            str(tmp_path / "out"),
            "--max-steps",
            "2",
            "--batch-size",
            "2",
            "--max-length",
            "64",
            "--rope-scaling",
            "linear",
            "--rope-factor",
            "4",
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    model, _ = load_model(tmp_path / "out")
    assert (model.config.rope_scaling, model.config.rope_scaling_factor) == ("linear", 4.0)
    code = main(
        [
            "finetune",
            "--base",
            str(tmp_path / "base"),
            "--task",
            "lm",
            "--train",
            str(text_files / "valid.txt"),
            "--dev",
            str(text_files / "valid.txt"),
            "-o",
            str(tmp_path / "bad"),
            "--rope-scaling",
            "yarn",
            "--rope-factor",
            "0.5",
        ]
    )
    assert code == 2
    assert "'--rope-factor': Input should be greater than or equal to 1" in capsys.readouterr().err
