"""HF interop: llmlab matches `transformers` on MiniLM and seeded tiny GPT-2 / BERT, both ways, losslessly.

Reference: `transformers.AutoModel` (BertModel), `GPT2LMHeadModel`, `tokenizers.Tokenizer`, all offline on
the same folders. Tolerance: 1e-4 max abs on every hidden state and the logits (measured: 0 for MiniLM,
~1e-6 for GPT-2, the tanh GELU being written differently).
"""

from __future__ import annotations

import csv
import json
from itertools import islice

import pytest
import torch
from safetensors.torch import load_file, save_file

from llmlab.errors import LlmlabError
from llmlab.model import ModelConfig, Transformer
from llmlab.model.checkpoint import load_model
from llmlab.model.hf_export import convert, to_hf
from llmlab.model.hf_import import from_hf
from llmlab.tokenizer.pipeline import Tokenizer
from llmlab.tokenizer.train import train_tokenizer

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
transformers.logging.set_verbosity_error()
TOL = 1e-4
BERT_DROPPED = {"pooler.dense.weight", "pooler.dense.bias", "embeddings.position_ids"}


def read_texts(path, n: int) -> list[str]:
    with open(path, encoding="utf-8", newline="") as f:
        return [row[0] for row in islice(csv.reader(f), 1, n + 1)]


def padded_batches(encodings, size: int, pad_id: int):
    """(ids, mask, type_ids) batches of `size`, each padded on the right to its longest row; sorted by length."""
    encodings = sorted(encodings, key=lambda e: len(e.ids))
    for start in range(0, len(encodings), size):
        chunk = encodings[start : start + size]
        T = max(len(e.ids) for e in chunk)
        yield (
            pad_rows([e.ids for e in chunk], T, pad_id),
            pad_rows([[1] * len(e.ids) for e in chunk], T, 0),
            pad_rows([e.type_ids for e in chunk], T, 0),
        )


def pad_rows(rows: list[list[int]], T: int, value: int) -> torch.Tensor:
    return torch.tensor([r + [value] * (T - len(r)) for r in rows])  # (B, T)


def max_diffs(ours, theirs, keep) -> list[float]:
    """Max abs difference of each hidden state at the kept (non-pad) positions."""
    return [(a[keep] - b[keep]).abs().max().item() for a, b in zip(ours, theirs, strict=True)]


def perturb(model: torch.nn.Module, seed: int) -> None:
    """Move every parameter off its init (unit LayerNorms and zero biases would hide mapping mistakes)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)


def same_tensors(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


# --- MiniLM (BERT): real checkpoint, real sentences -------------------------------------------------------


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    model, tokenizer = from_hf(minilm_dir)
    return model, tokenizer, transformers.AutoModel.from_pretrained(minilm_dir).eval()


@pytest.fixture(scope="module")
def sentences(shared_data) -> list[str]:
    return read_texts(shared_data / "sst2" / "dev.csv", 192) + read_texts(
        shared_data / "chnsenticorp_htl" / "dev.csv", 96
    )


def test_minilm_token_ids_equal_hf_tokenizers(minilm, minilm_dir, sentences):
    _, ours, _ = minilm
    theirs = tokenizers.Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    for a, b in zip(ours.encode_batch(sentences), theirs.encode_batch(sentences), strict=True):
        assert a.ids == b.ids and a.type_ids == b.type_ids and a.attention_mask == b.attention_mask


@pytest.mark.parametrize(
    ("n_sst2", "n_chinese", "max_length"),
    [(128, 64, 32), pytest.param(872, 777, 128, marks=pytest.mark.slow)],  # fast sample / whole dev sets
)
def test_minilm_hidden_states_match_transformers(minilm, shared_data, n_sst2, n_chinese, max_length):
    model, tokenizer, hf = minilm
    tokenizer = Tokenizer.from_hf(tokenizer.to_hf())  # a copy: no fixed padding to 128, our truncation
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    texts = read_texts(shared_data / "sst2" / "dev.csv", n_sst2)
    texts += read_texts(shared_data / "chnsenticorp_htl" / "dev.csv", n_chinese)
    worst = [0.0] * (model.config.n_layers + 1)
    with torch.no_grad():
        for ids, mask, types in padded_batches(tokenizer.encode_batch(texts), 32, pad_id=0):
            ours = model(ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
            theirs = hf(input_ids=ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
            keep = mask.bool()
            diffs = max_diffs(ours.hidden_states, theirs.hidden_states, keep)
            worst = [max(w, d) for w, d in zip(worst, diffs, strict=True)]
            last = (ours.last_hidden_state[keep] - theirs.last_hidden_state[keep]).abs().max().item()
            assert last < TOL and ours.logits is None
    print(f"\nMiniLM, {len(texts)} sentences: max abs diff per hidden state {worst}")
    assert max(worst) < TOL


def test_minilm_exports_back_to_the_same_tensors(minilm, minilm_dir, tmp_path, sentences):
    model, tokenizer, hf = minilm
    to_hf(model, tokenizer, tmp_path / "hf")
    original, exported = (
        load_file(minilm_dir / "model.safetensors"),
        load_file(tmp_path / "hf" / "model.safetensors"),
    )
    assert (
        set(original) - set(exported) == BERT_DROPPED
    )  # BertModel's pooler and a buffer: not part of llmlab
    assert same_tensors({k: original[k] for k in exported}, exported)
    ours = tokenizers.Tokenizer.from_file(str(tmp_path / "hf" / "tokenizer.json"))
    assert ours.encode(sentences[0]).ids == tokenizer.encode(sentences[0]).ids
    assert (tmp_path / "hf" / "vocab.txt").read_text() == (minilm_dir / "vocab.txt").read_text()
    reloaded = transformers.AutoModel.from_pretrained(tmp_path / "hf").eval()
    ids, mask, types = next(padded_batches(tokenizer.encode_batch(sentences[:8]), 8, pad_id=0))
    with torch.no_grad():
        a = reloaded(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        b = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    assert torch.equal(a, b)


def test_bert_without_tokenizer_json_reads_vocab_txt(minilm, minilm_dir, tmp_path):
    for name in ["config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"]:
        (tmp_path / name).symlink_to(minilm_dir / name)
    _, tokenizer = from_hf(tmp_path)
    text = "Héllo, World! 你好 unaffable"
    assert tokenizer.encode(text).ids == minilm[1].encode(text).ids[: len(tokenizer.encode(text).ids)]


# --- GPT-2: seeded tiny models, tokenizer trained on the spot ----------------------------------------------


@pytest.fixture(scope="module")
def shakespeare(shared_data) -> list[str]:
    lines = (shared_data / "tiny_shakespeare" / "train.txt").read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip()]


@pytest.fixture(scope="module")
def bpe(shakespeare) -> Tokenizer:
    return train_tokenizer("bpe", shakespeare[:3000], 1000, workers=1)


GPT2_VARIANTS = {
    "tied": dict(n_layer=3, n_embd=96, n_head=4),
    "untied-relu": dict(
        n_layer=2, n_embd=64, n_head=2, n_inner=200, activation_function="relu", tie_word_embeddings=False
    ),
}


def make_gpt2(directory, tokenizer, **settings):
    """A seeded, perturbed GPT2LMHeadModel saved with save_pretrained, the tokenizer beside it."""
    eot = tokenizer.token_to_id("<|endoftext|>")
    config = transformers.GPT2Config(
        vocab_size=1000, n_positions=128, bos_token_id=eot, eos_token_id=eot, **settings
    )
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config).eval()
    perturb(model, seed=1)
    model.save_pretrained(directory)
    tokenizer.save(directory / "tokenizer.json")
    return model


def gpt2_batch(tokenizer, texts):
    eot = tokenizer.token_to_id("<|endoftext|>")
    return next(padded_batches(tokenizer.encode_batch(texts), len(texts), pad_id=eot))[:2]


@pytest.mark.parametrize("variant", list(GPT2_VARIANTS))
def test_gpt2_from_hf_matches_transformers(tmp_path, bpe, shakespeare, variant):
    hf = make_gpt2(tmp_path, bpe, **GPT2_VARIANTS[variant])
    model, tokenizer = from_hf(tmp_path)
    assert tokenizer.fingerprint == bpe.fingerprint == model.config.tokenizer_fingerprint
    ids, mask = gpt2_batch(bpe, shakespeare[5000:5016])
    with torch.no_grad():
        ours = model(ids, attention_mask=mask, output_hidden_states=True)
        theirs = hf(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    keep = mask.bool()
    diffs = max_diffs(ours.hidden_states, theirs.hidden_states, keep)
    logits = (ours.logits[keep] - theirs.logits[keep]).abs().max().item()
    print(f"\nGPT-2 {variant}: hidden states {diffs}, logits {logits}")
    assert max(diffs) < TOL and logits < TOL


def test_gpt2_pytorch_model_bin_is_read_too(tmp_path, bpe):
    make_gpt2(tmp_path, bpe, **GPT2_VARIANTS["tied"])
    expected, _ = from_hf(tmp_path)
    torch.save(load_file(tmp_path / "model.safetensors"), tmp_path / "pytorch_model.bin")
    (tmp_path / "model.safetensors").unlink()
    model, _ = from_hf(tmp_path)
    assert same_tensors(model.state_dict(), expected.state_dict())


@pytest.mark.parametrize("variant", list(GPT2_VARIANTS))
def test_gpt2_hf_to_llmlab_to_hf_is_lossless(tmp_path, bpe, variant):
    make_gpt2(tmp_path / "a", bpe, **GPT2_VARIANTS[variant])
    to_hf(*from_hf(tmp_path / "a"), tmp_path / "b")
    assert same_tensors(
        load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    )
    a, b = (json.loads((tmp_path / d / "config.json").read_text()) for d in "ab")
    for key in [
        "n_layer",
        "n_embd",
        "n_head",
        "n_inner",
        "n_positions",
        "activation_function",
        "tie_word_embeddings",
    ]:
        assert a.get(key, b[key]) == b[key], key
    assert (tmp_path / "b" / "tokenizer.json").read_text() == (tmp_path / "a" / "tokenizer.json").read_text()


@pytest.mark.parametrize("tie", [True, False])
def test_llmlab_gpt2_shape_loads_in_transformers(tmp_path, bpe, shakespeare, tie):
    config = ModelConfig(
        vocab_size=1000,
        d_model=64,
        n_layers=2,
        n_heads=4,
        max_seq_len=128,
        positional="learned",
        activation="gelu_tanh",
        tie_embeddings=tie,
    )
    torch.manual_seed(0)
    model = Transformer(config).eval()
    perturb(model, seed=2)
    to_hf(model, bpe, tmp_path)
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    ids, mask = gpt2_batch(bpe, shakespeare[6000:6008])
    with torch.no_grad():
        diff = (model(ids, attention_mask=mask).logits - hf(input_ids=ids, attention_mask=mask).logits).abs()
    assert diff[mask.bool()].max().item() < TOL
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert all(hf_tokenizer(t)["input_ids"] == bpe.encode(t).ids for t in shakespeare[:50])


@pytest.mark.parametrize("type_vocab_size", [0, 2])
def test_llmlab_encoder_loads_as_bert(tmp_path, bpe, type_vocab_size):
    config = ModelConfig(
        vocab_size=1000,
        d_model=64,
        n_layers=2,
        n_heads=4,
        max_seq_len=64,
        positional="learned",
        causal=False,
        norm="post",
        embedding_norm=True,
        final_norm=False,
        type_vocab_size=type_vocab_size,
    )
    torch.manual_seed(0)
    model = Transformer(config).eval()
    perturb(model, seed=3)
    to_hf(model, bpe, tmp_path)
    hf = transformers.AutoModel.from_pretrained(tmp_path).eval()
    assert type(hf).__name__ == "BertModel"
    ids, mask = torch.randint(0, 1000, (3, 20)), torch.ones(3, 20, dtype=torch.long)
    mask[1, 12:] = 0
    with torch.no_grad():
        diffs = max_diffs(
            model(ids, attention_mask=mask, output_hidden_states=True).hidden_states,
            hf(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states,
            mask.bool(),
        )
    assert max(diffs) < TOL


def test_bert_task_checkpoint_imports_its_encoder(tmp_path, shakespeare):
    """A BertForSequenceClassification folder: `bert.` prefixes dropped, the classifier ignored."""
    tokenizer = train_tokenizer("wordpiece", shakespeare[:2000], 500, workers=1)
    config = transformers.BertConfig(
        vocab_size=500, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=100
    )
    torch.manual_seed(0)
    hf = transformers.BertForSequenceClassification(config).eval()
    perturb(hf, seed=4)
    hf.save_pretrained(tmp_path)
    tokenizer.save(tmp_path / "tokenizer.json")
    model, _ = from_hf(tmp_path)
    ids = torch.tensor([tokenizer.encode(t).ids for t in shakespeare[100:104]][:1])
    with torch.no_grad():
        diff = (model(ids).last_hidden_state - hf.bert(input_ids=ids).last_hidden_state).abs().max().item()
    assert diff < TOL


# --- convert: the function behind `llmlab convert` ----------------------------------------------------------


def test_convert_both_ways(tmp_path, bpe, shakespeare):
    hf = make_gpt2(tmp_path / "hf", bpe, **GPT2_VARIANTS["tied"])
    assert convert(tmp_path / "hf", tmp_path / "ours", "from-hf") == tmp_path / "ours"
    model, tokenizer = load_model(tmp_path / "ours")
    assert sorted(p.name for p in (tmp_path / "ours").iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    ]
    convert(tmp_path / "ours", tmp_path / "back", "to-hf")
    assert same_tensors(
        load_file(tmp_path / "hf" / "model.safetensors"), load_file(tmp_path / "back" / "model.safetensors")
    )
    ids, mask = gpt2_batch(tokenizer, shakespeare[7000:7004])
    back = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "back").eval()
    with torch.no_grad():
        assert torch.equal(back(input_ids=ids).logits, hf(input_ids=ids).logits)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back", "hf", "ours"]  # no staging folders left


# --- errors: one line naming the file; nothing half-written -------------------------------------------------


def one_line(excinfo, *parts: str) -> None:
    message = str(excinfo.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, (part, message)


def test_convert_needs_the_parent_folder_and_a_direction(tmp_path, bpe):
    make_gpt2(tmp_path / "hf", bpe, **GPT2_VARIANTS["tied"])
    with pytest.raises(LlmlabError) as e:
        convert(tmp_path / "hf", tmp_path / "no" / "out", "from-hf")
    one_line(e, "parent folder", str(tmp_path / "no"))
    with pytest.raises(LlmlabError) as e:
        convert(tmp_path / "hf", tmp_path / "out", "sideways")
    one_line(e, "sideways")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]


def encoder_settings():
    return dict(causal=False, norm="post", embedding_norm=True, final_norm=False)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"positional": "rope"},
            "norm_type='layer' cannot be exported: a causal RoPE model exports as Llama",
        ),
        ({"positional": "rope", "causal": False}, "positional 'rope' has no GPT-2 or BERT equivalent"),
        ({"positional": "alibi"}, "positional 'alibi' has no GPT-2 or BERT equivalent"),
        ({"bias": False}, "bias=false has no GPT-2 or BERT equivalent"),
        (
            {"norm": "post"},
            "norm='post' cannot be exported: a causal model exports as GPT-2, which has norm='pre'",
        ),
        ({"type_vocab_size": 2}, "type_vocab_size=2 cannot be exported"),
        (encoder_settings() | {"norm": "pre"}, "an encoder exports as BERT, which has norm='post'"),
        (encoder_settings() | {"final_norm": True}, "final_norm=True cannot be exported"),
    ],
)
def test_export_refuses_configs_without_an_hf_equivalent(tmp_path, bpe, overrides, message):
    settings = dict(vocab_size=1000, d_model=32, n_layers=1, n_heads=4, positional="learned") | overrides
    with pytest.raises(LlmlabError) as e:
        to_hf(Transformer(ModelConfig(**settings)), bpe, tmp_path / "out")
    one_line(e, message)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_export_leaves_nothing_half_written(tmp_path, bpe, monkeypatch):
    model = Transformer(ModelConfig(vocab_size=1000, d_model=32, n_layers=1, n_heads=4, positional="learned"))

    def broken_save(self, path):
        raise LlmlabError(f"{path}: disk full")

    monkeypatch.setattr(Tokenizer, "save", broken_save)
    (tmp_path / "existing").mkdir()
    (tmp_path / "existing" / "keep.txt").write_text("old")
    for out in ["new", "existing"]:
        with pytest.raises(LlmlabError, match="disk full"):
            to_hf(model, bpe, tmp_path / out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing"]
    assert [p.name for p in (tmp_path / "existing").iterdir()] == ["keep.txt"]


def test_import_refuses_an_unsupported_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "falcon", "hidden_size": 64}))
    with pytest.raises(LlmlabError) as e:
        from_hf(tmp_path)
    one_line(e, str(tmp_path / "config.json"), "unsupported model_type 'falcon'")


def test_import_refuses_relative_position_bert(tmp_path, minilm_dir):
    config = json.loads((minilm_dir / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(config | {"position_embedding_type": "relative_key"}))
    with pytest.raises(LlmlabError) as e:
        from_hf(tmp_path)
    one_line(e, str(tmp_path / "config.json"), "position_embedding_type 'relative_key'")


@pytest.mark.parametrize("missing", ["config.json", "model.safetensors", "tokenizer.json"])
def test_import_names_a_missing_file(tmp_path, bpe, missing):
    make_gpt2(tmp_path, bpe, **GPT2_VARIANTS["tied"])
    (tmp_path / missing).unlink()
    with pytest.raises(LlmlabError) as e:
        from_hf(tmp_path)
    one_line(e, str(tmp_path))


def test_import_names_unexpected_and_missing_tensors(tmp_path, bpe):
    make_gpt2(tmp_path, bpe, **GPT2_VARIANTS["tied"])
    path = tmp_path / "model.safetensors"
    tensors = load_file(path)
    save_file(tensors | {"transformer.h.0.attn.rotary.weight": torch.zeros(2)}, path)
    with pytest.raises(LlmlabError) as e:
        from_hf(tmp_path)
    one_line(e, str(path), "h.0.attn.rotary.weight")
    del tensors["transformer.h.2.mlp.c_fc.weight"], tensors["transformer.h.2.mlp.c_fc.bias"]
    save_file(tensors, path)
    with pytest.raises(LlmlabError) as e:
        from_hf(tmp_path)
    one_line(e, str(path), "missing 2 tensors: blocks.2.mlp.fc.weight, blocks.2.mlp.fc.bias")
