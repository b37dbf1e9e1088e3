"""The llmlab checkpoint folder: round trips for every encoding, tied weights stored once, one-line errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from llmlab.errors import LlmlabError
from llmlab.model import POSITIONAL, ModelConfig, Transformer
from llmlab.model.checkpoint import load_model, save_model
from llmlab.tokenizer.train import train_tokenizer

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "a stitch in time saves nine, and the early bird catches the worm",
    "to be or not to be, that is the question",
] * 20


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer("bpe", CORPUS, 300, workers=1)


@pytest.fixture(scope="module")
def other_tokenizer():
    return train_tokenizer("bpe", CORPUS, 290, workers=1)


def tiny(**overrides) -> ModelConfig:
    settings = dict(vocab_size=300, d_model=32, n_layers=2, n_heads=4, max_seq_len=64) | overrides
    return ModelConfig(**settings)


def build(**overrides) -> Transformer:
    torch.manual_seed(0)
    model = Transformer(tiny(**overrides)).eval()
    with torch.no_grad():
        for p in model.parameters():  # make every tensor (LayerNorms, biases too) distinct from its init
            p.add_(torch.randn_like(p) * 0.1)
    return model


@pytest.fixture
def saved(tmp_path, tokenizer):
    """A saved checkpoint folder of a tiny tied causal model."""
    directory = tmp_path / "ckpt"
    save_model(directory, build(positional="learned"), tokenizer)
    return directory


def one_line_naming(excinfo, name: str) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    assert name in message
    return message


# --- round trips ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("positional", list(POSITIONAL))
def test_round_trip_gives_the_same_model(tmp_path, tokenizer, positional):
    model = build(positional=positional)
    save_model(tmp_path / "m", model, tokenizer)
    loaded, loaded_tok = load_model(tmp_path / "m")
    assert not loaded.training
    assert loaded.config == tiny(positional=positional, tokenizer_fingerprint=tokenizer.fingerprint)
    assert model.config.tokenizer_fingerprint is None  # the caller's config is left alone
    assert loaded_tok.fingerprint == tokenizer.fingerprint
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    ids = torch.randint(0, 300, (2, 10))
    assert torch.equal(model(ids).logits, loaded(ids).logits)


def test_tied_head_is_stored_once_and_stays_tied(saved):
    assert "lm_head.weight" not in load_file(saved / "model.safetensors")
    model, _ = load_model(saved)
    assert model.lm_head.weight is model.tok_emb.weight


@pytest.mark.parametrize(
    "overrides",
    [
        {"tie_embeddings": False},  # separate lm_head
        {
            "causal": False,
            "tie_embeddings": False,
            "type_vocab_size": 2,
            "norm": "post",
            "embedding_norm": True,
        },
    ],
)
def test_untied_and_encoder_models_round_trip(tmp_path, tokenizer, overrides):
    model = build(positional="learned", **overrides)
    save_model(tmp_path / "m", model, tokenizer)
    loaded, _ = load_model(tmp_path / "m")
    stored = load_file(tmp_path / "m" / "model.safetensors")
    assert set(stored) == set(model.state_dict())
    ids = torch.randint(0, 300, (2, 7))
    assert torch.equal(model(ids).last_hidden_state, loaded(ids).last_hidden_state)


def test_a_tokenizer_passed_in_replaces_the_folder_file(saved, tokenizer):
    (saved / "tokenizer.json").unlink()
    _, tok = load_model(saved, tokenizer)
    assert tok is tokenizer


def test_save_overwrites_and_leaves_no_temporary_files(saved, tokenizer):
    save_model(saved, build(positional="learned", d_ff=40), tokenizer)
    assert sorted(p.name for p in saved.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    assert load_model(saved)[0].config.d_ff == 40


# --- errors ---------------------------------------------------------------------------------------------


def test_save_needs_the_parent_folder(tmp_path, tokenizer):
    with pytest.raises(LlmlabError) as e:
        save_model(tmp_path / "nope" / "ckpt", build(), tokenizer)
    one_line_naming(e, "nope")
    assert not (tmp_path / "nope").exists()


def test_save_refuses_a_tokenizer_larger_than_the_vocabulary(tmp_path, tokenizer):
    with pytest.raises(LlmlabError) as e:
        save_model(tmp_path / "m", build(vocab_size=200), tokenizer)
    assert "vocab_size is 200" in one_line_naming(e, "tokenizer.json")
    assert not any((tmp_path / "m").iterdir())


def test_missing_folder(tmp_path):
    with pytest.raises(LlmlabError) as e:
        load_model(tmp_path / "absent")
    one_line_naming(e, "absent")


@pytest.mark.parametrize("name", ["config.json", "model.safetensors", "tokenizer.json"])
def test_missing_file_is_named(saved, name):
    (saved / name).unlink()
    with pytest.raises(LlmlabError) as e:
        load_model(saved)
    assert "missing" in one_line_naming(e, str(saved / name))


def test_unknown_encoding_in_config_names_the_file(saved):
    config = json.loads((saved / "config.json").read_text())
    (saved / "config.json").write_text(json.dumps(config | {"positional": "xpos"}))
    with pytest.raises(LlmlabError) as e:
        load_model(saved)
    assert "unknown positional 'xpos'" in one_line_naming(e, str(saved / "config.json"))


def test_corrupt_weights_file(saved):
    path = saved / "model.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(LlmlabError) as e:
        load_model(saved)
    assert "not a valid safetensors file" in one_line_naming(e, str(path))


def rewrite(path, change) -> None:
    tensors = load_file(path)
    change(tensors)
    save_file(tensors, path)


def test_missing_tensors_are_named_a_few_at_a_time(saved):
    path = saved / "model.safetensors"
    rewrite(path, lambda t: [t.pop(n) for n in [n for n in t if n.startswith("blocks.1.")]])
    with pytest.raises(LlmlabError) as e:
        load_model(saved)
    message = one_line_naming(e, str(path))
    assert (
        "missing 16 tensors: blocks.1.ln1.weight, blocks.1.ln1.bias, blocks.1.attn.q.weight and 13 more"
        in message
    )


def test_extra_tensor_is_named(saved):
    path = saved / "model.safetensors"
    rewrite(path, lambda t: t.update({"blocks.9.attn.q.weight": torch.zeros(2)}))
    with pytest.raises(LlmlabError) as e:
        load_model(saved)
    assert "unexpected 1 tensor: blocks.9.attn.q.weight" in one_line_naming(e, str(path))


def test_shape_mismatch_names_tensor_and_both_shapes(saved):
    path = saved / "model.safetensors"
    rewrite(path, lambda t: t.update({"blocks.0.mlp.fc.weight": torch.zeros(100, 32)}))
    with pytest.raises(LlmlabError) as e:
        load_model(saved)
    message = one_line_naming(e, str(path))
    assert "blocks.0.mlp.fc.weight has shape (100, 32); the config expects (128, 32)" in message


def test_a_different_tokenizer_is_refused(saved, other_tokenizer):
    with pytest.raises(LlmlabError) as e:
        load_model(saved, other_tokenizer)
    one_line_naming(e, str(saved))


def test_a_tampered_tokenizer_file_is_refused(saved, other_tokenizer):
    other_tokenizer.save(saved / "tokenizer.json")
    with pytest.raises(LlmlabError) as e:
        load_model(saved)
    assert "changed since the model was saved" in one_line_naming(e, str(saved / "tokenizer.json"))
