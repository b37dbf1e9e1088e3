"""Packed windows with attention kept inside each document (`documents="file"|"line"`).

Proven here: a packed window gives every document the outputs it gets alone (RoPE: relative positions, so
the offset of a later document changes nothing beyond float rounding), the document ids, the token array
with one document per line, exact resume, and the refusals.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from llmlab.errors import LlmlabError
from llmlab.io import read_lines
from llmlab.model import ModelConfig, Transformer
from llmlab.pretraining.data import document_ids, token_array
from llmlab.pretraining.loop import PretrainConfig, pretrain, read_metrics
from llmlab.tokenizer.train import train_tokenizer
from tests.pretraining.corpus import split_corpus

EOS = 0  # <|endoftext|> in the byte-level BPE trained below (the trainer puts it first)


@pytest.fixture(scope="module")
def corpus(shared_data: Path, tmp_path_factory) -> dict[str, Path]:
    """Poems, one per line (zh_poetry), and a byte-level BPE; a WordPiece without <|endoftext|>."""
    root = tmp_path_factory.mktemp("poems")
    lines, paths = split_corpus(shared_data / "zh_poetry/train.txt", root, 500, 100)
    bpe = train_tokenizer("bpe", lines, 600, workers=1)
    assert bpe.token_to_id("<|endoftext|>") == EOS
    bpe.save(root / "bpe.json")
    train_tokenizer("wordpiece", lines, 4000, workers=1).save(root / "wordpiece.json")
    return {**paths, "tok": root / "bpe.json"}


def _config(corpus: dict[str, Path], out: Path, **overrides) -> PretrainConfig:
    settings = dict(
        train_files=[corpus["train"]],
        valid_files=[corpus["valid"]],
        tokenizer=corpus["tok"],
        output_dir=out,
        model={"d_model": 32, "n_layers": 2, "n_heads": 2, "positional": "rope", "dropout": 0.1},
        context_length=32,
        batch_size=4,
        steps=12,
        warmup_steps=2,
        eval_every=4,
        eval_tokens=256,
        checkpoint_every=5,
        seed=5,
        documents="line",
    )
    return PretrainConfig(**{**settings, **overrides})


def test_document_ids_count_the_ends_before_each_token():
    x = torch.tensor([[5, 6, EOS, 7, EOS, EOS, 8], [EOS, 1, 2, 3, 4, 5, 6]])
    assert document_ids(x, EOS).tolist() == [[0, 0, 0, 1, 1, 2, 3], [0, 1, 1, 1, 1, 1, 1]]


@pytest.mark.parametrize("causal", [True, False])
def test_a_packed_window_gives_each_document_its_outputs_alone(causal):
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=4, causal=causal)).eval()
    a, b = torch.randint(1, 50, (1, 7)), torch.randint(1, 50, (1, 9))
    a[0, -1] = EOS  # a ends with the end-of-text token, b runs to the window's end
    packed = torch.cat([a, b], dim=1)  # (1, 16)
    with torch.no_grad():
        together = model(packed, document_ids=document_ids(packed, EOS)).last_hidden_state
        alone = [model(x).last_hidden_state for x in (a, b)]
        crossing = model(packed).last_hidden_state  # without document ids: b sees a
    torch.testing.assert_close(together[:, :7], alone[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(together[:, 7:], alone[1], rtol=0, atol=1e-5)
    assert (crossing[:, 7:] - alone[1]).abs().max() > 1e-2


def test_document_ids_are_refused_with_a_prefix_or_a_wrong_shape():
    model = Transformer(ModelConfig(vocab_size=50, d_model=16, n_layers=1, n_heads=2))
    x = torch.randint(0, 50, (2, 5))
    with pytest.raises(LlmlabError, match="document_ids has shape"):
        model(x, document_ids=torch.zeros(2, 4, dtype=torch.long))
    prefix = [(torch.zeros(1, 2, 3, 8), torch.zeros(1, 2, 3, 8))]  # one layer, 2 heads, 3 prefix keys
    with pytest.raises(LlmlabError, match="without a cache and without prefix_kv"):
        model(x, prefix_kv=prefix, document_ids=torch.zeros(2, 5, dtype=torch.long))


def test_line_documents_end_every_line_with_end_of_text(corpus, tmp_path):
    from llmlab.tokenizer.pipeline import Tokenizer

    tok = Tokenizer.load(corpus["tok"])
    per_file = token_array([corpus["train"]], tok, tmp_path)
    per_line = token_array([corpus["train"]], tok, tmp_path, line_documents=True)
    assert int((per_file == EOS).sum()) == 1 and int((per_line == EOS).sum()) == 500
    assert np.array_equal(per_line[per_line != EOS], per_file[per_file != EOS])
    assert len(list(tmp_path.glob("tokens-*.npy"))) == 2  # cached apart
    lines = read_lines(corpus["train"])  # each line's own encode, then its <|endoftext|>
    want = [i for line in lines for i in tok.encode(line + "\n", add_special_tokens=False).ids + [EOS]]
    assert per_line.tolist() == want


def test_packed_pretraining_learns_and_resumes_exactly(corpus, tmp_path):
    pretrain(_config(corpus, tmp_path / "a"), progress=False)
    pretrain(_config(corpus, tmp_path / "b", stop_after=6), progress=False)
    pretrain(_config(corpus, tmp_path / "b", resume=True), progress=False)
    a, b = read_metrics(tmp_path / "a"), read_metrics(tmp_path / "b")
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    assert [r.get("val_loss") for r in a] == [r.get("val_loss") for r in b]
    pretrain(_config(corpus, tmp_path / "c", documents="none"), progress=False)
    crossing = read_metrics(tmp_path / "c")
    assert crossing[0]["loss"] != a[0]["loss"]  # the same windows' text, other attention and tokens
    assert all(np.isfinite(r["loss"]) for r in a) and a[-1]["loss"] < a[0]["loss"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"documents": "page"}, "unknown documents 'page'"),
        ({"objective": "mlm", "model": {}}, "documents .* belongs to objective causal"),
    ],
)
def test_bad_document_settings_are_refused(corpus, tmp_path, overrides, message):
    with pytest.raises(LlmlabError, match=message):
        _config(corpus, tmp_path, **overrides)


def test_a_tokenizer_without_end_of_text_is_refused_in_one_line(corpus, tmp_path):
    config = _config(corpus, tmp_path, tokenizer=corpus["tok"].with_name("wordpiece.json"))
    with pytest.raises(LlmlabError, match=r"wordpiece.json: .*needs.* <\|endoftext\|> token"):
        pretrain(config, progress=False)
