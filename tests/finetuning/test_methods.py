"""The method registry and FinetuneModel: settings, what each method trains, save/load, the Predictor.

Helpers used by the other method tests live here too: small random HF BERT / GPT-2 folders (with MiniLM's
tokenizer, so `from_hf` and `transformers` read the same folder) and real SST-2 dev sentences.
"""

from __future__ import annotations

import csv
import shutil
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch

from llmlab.errors import LlmlabError
from llmlab.evaluation.predictor import Ensemble, load_predictor
from llmlab.finetuning.classify import encode_texts
from llmlab.finetuning.methods import (
    METHODS,
    FinetuneModel,
    MethodSettings,
    build_model,
    load_classifier,
    load_finetuned,
)

LABELS = ["negative", "positive"]
SMALL = MethodSettings(num_virtual_tokens=4, prefix_hidden=16, lora_rank=4)


def sst2_dev(shared_data: Path, n: int) -> list[str]:
    """The first `n` sentences of SST-2's dev split."""
    with open(shared_data / "sst2" / "dev.csv", encoding="utf-8", newline="") as f:
        return [row[0] for row in islice(csv.reader(f), 1, n + 1)]


def tiny_hf_dir(folder: Path, minilm_dir: Path, kind: str, seed: int = 0) -> Path:
    """A seeded random HF BERT or GPT-2 folder of width 32, 2 layers, with MiniLM's tokenizer (vocab 30522)."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    if kind == "bert":
        config = transformers.BertConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
        )
        model = transformers.BertModel(config)
    else:
        config = transformers.GPT2Config(vocab_size=30522, n_embd=32, n_layer=2, n_head=4, n_positions=128)
        model = transformers.GPT2LMHeadModel(config)
    model.save_pretrained(folder)
    shutil.copy(minilm_dir / "tokenizer.json", folder / "tokenizer.json")
    return folder


def logits_of(model: FinetuneModel, texts: list[str]) -> torch.Tensor:
    b = encode_texts(model.tokenizer, texts, None, 64)
    return model(b.input_ids, b.attention_mask, b.token_type_ids)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory, minilm_dir) -> Path:
    return tiny_hf_dir(tmp_path_factory.mktemp("bert"), minilm_dir, "bert")


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory, minilm_dir) -> Path:
    return tiny_hf_dir(tmp_path_factory.mktemp("gpt2"), minilm_dir, "gpt2")


def test_settings_round_trip_and_unknown_keys():
    s = MethodSettings(lora_targets=["q", "fc"], prompt_init="vocab")
    assert MethodSettings.from_dict(s.to_dict()) == s
    with pytest.raises(LlmlabError, match="x.json: unknown method settings: rank"):
        MethodSettings.from_dict({"rank": 4}, "x.json")
    with pytest.raises(LlmlabError, match="lora_targets"):
        MethodSettings(lora_targets=("query",))
    with pytest.raises(LlmlabError, match="prompt_init_text"):
        MethodSettings(prompt_init="text")


def test_bad_method_task_and_labels(tiny_bert, tiny_gpt2):
    with pytest.raises(LlmlabError, match="unknown method 'adapter'"):
        build_model(tiny_bert, "adapter", "classification", LABELS, SMALL)
    with pytest.raises(LlmlabError, match="at least two labels"):
        build_model(tiny_bert, "lora", "classification", ["only"], SMALL)
    with pytest.raises(LlmlabError, match="needs a model with an LM head"):
        build_model(tiny_bert, "lora", "lm", [], SMALL)
    with pytest.raises(LlmlabError, match="probe"):
        build_model(tiny_gpt2, "probe", "lm", [], SMALL)


@pytest.mark.parametrize("method", METHODS)
def test_each_method_trains_only_its_parts(tiny_bert, method):
    model = build_model(tiny_bert, method, "classification", LABELS, SMALL, dropout=0.0)
    trainable = set(model.trainable_state_dict())
    assert {"head.classifier.weight", "head.pooler.weight"} <= trainable
    own = {
        "full": lambda n: n.startswith("base."),
        "probe": lambda n: False,
        "prompt": lambda n: n.startswith("prompt."),
        "prefix": lambda n: n.startswith("prefix."),
        "lora": lambda n: "lora_" in n,
    }[method]
    assert {n for n in trainable if not n.startswith("head.")} == {
        n for n, _ in model.named_parameters() if own(n)
    }
    logits_of(model, ["a fine film", "dull"]).sum().backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None) == (name in trainable), name


@pytest.mark.parametrize("method", METHODS)
def test_save_load_gives_the_same_logits(tiny_gpt2, tmp_path, method):
    model = build_model(tiny_gpt2, method, "classification", LABELS, SMALL, seed=3).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)  # as after training: LoRA B non-zero etc.
        expected = logits_of(model, ["a fine film", "not good at all , sadly"])
    model.save(tmp_path / "out")
    loaded = load_finetuned(tmp_path / "out")
    assert (loaded.method, loaded.labels, loaded.settings) == (method, LABELS, SMALL)
    with torch.no_grad():
        torch.testing.assert_close(logits_of(loaded, ["a fine film", "not good at all , sadly"]), expected)


def test_lm_task_logits_cover_the_real_tokens_only(tiny_gpt2):
    model = build_model(tiny_gpt2, "prompt", "lm", [], SMALL).eval()
    b = encode_texts(model.tokenizer, ["to be or not"], None, 64)
    assert model(b.input_ids, b.attention_mask).shape == (1, b.input_ids.shape[1], 30522)


def test_load_trainable_state_dict_restores_and_checks_names(tiny_bert):
    model = build_model(tiny_bert, "lora", "classification", LABELS, SMALL)
    saved = model.trainable_state_dict()
    with torch.no_grad():
        model.head.classifier.weight.add_(1.0)
    model.load_trainable_state_dict(saved)
    torch.testing.assert_close(model.head.classifier.weight, saved["head.classifier.weight"])
    del saved["head.classifier.bias"]
    with pytest.raises(LlmlabError, match="ckpt: missing 1 tensors: head.classifier.bias"):
        model.load_trainable_state_dict(saved, "ckpt")


def test_gradient_checkpointing_gives_the_same_gradients(tiny_gpt2):
    grads = []
    for flag in (False, True):
        settings = MethodSettings(num_virtual_tokens=4, prefix_hidden=16, gradient_checkpointing=flag)
        model = build_model(tiny_gpt2, "prefix", "classification", LABELS, settings, dropout=0.1, seed=1)
        torch.manual_seed(0)
        logits_of(model.train(), ["a fine film", "dull"]).sum().backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.requires_grad})
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=0, atol=1e-6)


def test_classifier_predicts_probabilities_and_ensembles(tiny_bert, tmp_path, shared_data):
    texts = sst2_dev(shared_data, 20)
    for method, seed in (("lora", 0), ("probe", 1)):
        build_model(tiny_bert, method, "classification", LABELS, SMALL, seed=seed).save(tmp_path / method)
    clf = load_classifier(tmp_path / "lora")
    proba = clf.predict_proba(texts, batch_size=7)
    assert (clf.name, clf.labels, proba.dtype, proba.shape) == ("lora", LABELS, np.float64, (20, 2))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    one_by_one = np.vstack([clf.predict_proba([t]) for t in texts[:5]])
    np.testing.assert_allclose(one_by_one, proba[:5], atol=1e-6)  # padding and batching change nothing
    ensemble = load_predictor([tmp_path / "lora", tmp_path / "probe"])
    assert isinstance(ensemble, Ensemble)
    both = (proba + load_classifier(tmp_path / "probe").predict_proba(texts)) / 2
    np.testing.assert_allclose(ensemble.predict_proba(texts), both, atol=1e-12)
