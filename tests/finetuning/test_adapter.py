"""Adapter folders: small files, the base fingerprint, refusal of another base, the full-model folder."""

from __future__ import annotations

import json
import os

import pytest
import torch

from llmlab.errors import LlmlabError
from llmlab.finetuning.adapter import base_fingerprint, load_base
from llmlab.finetuning.methods import METHODS, MethodSettings, build_model, load_finetuned
from llmlab.model.checkpoint import save_model
from tests.finetuning import test_methods
from tests.finetuning.test_methods import LABELS, SMALL, logits_of, tiny_hf_dir

tiny_bert = test_methods.tiny_bert  # the shared fixture


def folder_bytes(folder) -> int:
    return sum(f.stat().st_size for f in folder.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("method", ["probe", "prompt", "prefix", "lora"])
def test_adapters_are_small_next_to_minilm(minilm_dir, tmp_path, method):
    build_model(minilm_dir, method, "classification", LABELS, MethodSettings()).save(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["adapter.json", "adapter.safetensors"]
    base_size = (minilm_dir / "model.safetensors").stat().st_size
    assert folder_bytes(tmp_path) < 0.02 * base_size  # prefix folded: 0.4 %; lora q,v r=8 + head: 1 %


def test_adapter_records_its_base_and_refuses_another(tiny_bert, minilm_dir, tmp_path):
    build_model(tiny_bert, "lora", "classification", LABELS, SMALL).save(tmp_path / "ad")
    meta = json.loads((tmp_path / "ad" / "adapter.json").read_text())
    assert meta["base"] == str(tiny_bert.resolve()) and meta["method"] == "lora" and meta["labels"] == LABELS
    other = tiny_hf_dir(tmp_path / "other", minilm_dir, "bert", seed=1)  # same shape, other weights
    with pytest.raises(LlmlabError, match=r"ad/adapter\.json: this adapter was trained on base .* differs"):
        load_finetuned(tmp_path / "ad", base=other)


def test_fingerprint_follows_the_weights_not_the_format(tiny_bert, tmp_path):
    model, tokenizer, _ = load_base(tiny_bert)
    save_model(tmp_path / "llmlab", model, tokenizer)  # the same base as an llmlab folder
    assert base_fingerprint(load_base(tmp_path / "llmlab")[0]) == base_fingerprint(model)
    build_model(tiny_bert, "prefix", "classification", LABELS, SMALL).save(tmp_path / "ad")
    load_finetuned(tmp_path / "ad", base=tmp_path / "llmlab")  # accepted
    with torch.no_grad():
        model.blocks[1].mlp.fc.bias[0] += 1e-3
    save_model(tmp_path / "llmlab", model, tokenizer)
    assert base_fingerprint(model) != base_fingerprint(load_base(tiny_bert)[0])
    with pytest.raises(LlmlabError, match="adapter.json"):
        load_finetuned(tmp_path / "ad", base=tmp_path / "llmlab")


def test_full_fine_tuning_saves_a_whole_model(tiny_bert, tmp_path):
    model = build_model(tiny_bert, "full", "classification", LABELS, SMALL).eval()
    with torch.no_grad():
        model.base.blocks[0].attn.q.weight.add_(0.1)
        expected = logits_of(model, ["a fine film"])
    model.save(tmp_path)
    assert {"config.json", "model.safetensors", "tokenizer.json", "head.safetensors", "finetune.json"} <= set(
        os.listdir(tmp_path)
    )
    with torch.no_grad():
        torch.testing.assert_close(logits_of(load_finetuned(tmp_path), ["a fine film"]), expected)
    build_model(tiny_bert, "probe", "classification", LABELS, SMALL).save(tmp_path)  # a method change
    assert load_finetuned(tmp_path).method == "probe" and not (tmp_path / "finetune.json").exists()


@pytest.mark.parametrize("method", METHODS)
def test_missing_or_corrupt_folders_are_clear_errors(tmp_path, method):
    with pytest.raises(LlmlabError, match="not found"):
        load_finetuned(tmp_path / "nope")
    with pytest.raises(LlmlabError, match="not a fine-tuned model folder"):
        load_finetuned(tmp_path)
    (tmp_path / "adapter.json").write_text(json.dumps({"method": method}))
    with pytest.raises(LlmlabError, match="adapter.json: missing task"):
        load_finetuned(tmp_path)
