"""Masked-LM pretraining: BERT's masking statistics, whole words never split (the tokenizer's words and
jieba's), dynamic masks that repeat under a seed, a run whose loss falls and resumes exactly, a result that
fine-tuning, evaluation and HF `BertForMaskedLM` accept, and one-line refusals of bad input through the CLI.

Tolerances of the statistics: the 80/10/10 shares are binomial over N chosen positions; each is checked
within 5 standard deviations, sqrt(p (1 - p) / N) (a false alarm about once in 3.5 million runs).
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.cli import main
from llmlab.errors import LlmlabError
from llmlab.io import read_lines
from llmlab.model.checkpoint import load_model
from llmlab.model.transformer import Transformer
from llmlab.pretraining import PretrainConfig, pretrain, read_metrics
from llmlab.pretraining.data import token_array
from llmlab.pretraining.masking import IGNORE_INDEX, budget, mask_tokens, word_numbers
from llmlab.pretraining.mlm import mlm_tokens
from llmlab.pretraining.objectives import build_objective
from llmlab.pretraining.words import word_start_array
from llmlab.stdlib_text import demo_classification, demo_corpus
from llmlab.tokenizer.pipeline import Tokenizer
from llmlab.tokenizer.train import train_tokenizer

TINY = {"d_model": 32, "n_layers": 2, "n_heads": 2}
V, MASK = 30000, 3  # vocabulary and mask id of the statistics tests


def five_sigma(p: float, n: int) -> float:
    return 5 * math.sqrt(p * (1 - p) / n)


# --- masking: statistics, specials, seeds --------------------------------------------------------------


def test_token_masking_chooses_the_budget_and_splits_it_80_10_10():
    rng = np.random.default_rng(0)
    ids = rng.integers(10, V, size=(4000, 128))
    maskable = rng.random(ids.shape) > 0.05  # scattered special tokens
    maskable[:, [0, -1]] = False  # [CLS] ... [SEP]
    inputs, labels = mask_tokens(ids, maskable, 0.15, MASK, V, np.random.default_rng(1))
    chosen = labels != IGNORE_INDEX
    assert not (chosen & ~maskable).any()  # specials never chosen
    assert (inputs[~chosen] == ids[~chosen]).all() and (labels[chosen] == ids[chosen]).all()
    counts, n = chosen.sum(1), maskable.sum(1)
    assert (counts == np.maximum(1, np.rint(0.15 * n))).all()  # Google's exact per-sequence count
    assert abs(chosen.sum() / maskable.sum() - 0.15) < 0.5 / n.min()  # 15%, up to the rounding
    N = int(chosen.sum())
    masked = (inputs[chosen] == MASK).mean()
    kept = (inputs[chosen] == ids[chosen]).mean()  # 10% kept, plus random draws of the same id (1 / V)
    replaced = 1 - masked - kept
    assert abs(masked - 0.8) < five_sigma(0.8, N)
    assert abs(kept - 0.1) < five_sigma(0.1, N) + 1 / V
    assert abs(replaced - 0.1) < five_sigma(0.1, N) + 2 / V
    swaps = inputs[chosen & (inputs != ids) & (inputs != MASK)]  # uniform over [0, V)
    assert swaps.min() >= 0 and swaps.max() < V
    assert abs(swaps.mean() / V - 0.5) < 5 * math.sqrt(1 / 12 / len(swaps))


def test_budget_is_the_count_of_googles_create_pretraining_data():
    n = np.arange(1, 1000)
    google = [max(1, int(round(k * 0.15))) for k in n]  # num_to_predict, without max_predictions_per_seq
    assert budget(np.arange(1000)[None, :] < n[:, None], 0.15).tolist() == google


def test_whole_word_masking_fills_the_budget_from_whole_words():
    rng = np.random.default_rng(2)
    ids = rng.integers(10, V, size=(2000, 128))
    maskable = np.ones(ids.shape, dtype=bool)
    maskable[:, [0, -1]] = False
    starts = rng.random(ids.shape) < 0.6  # words of 1.7 tokens on average, as Chinese words in characters
    inputs, labels = mask_tokens(ids, maskable, 0.15, MASK, V, np.random.default_rng(3), starts)
    chosen = labels != IGNORE_INDEX
    assert not (chosen & ~maskable).any()
    assert (chosen.sum(1) <= budget(maskable, 0.15)).all()  # never over, and words that fit fill it
    assert chosen.sum() / maskable.sum() > 0.148
    N = int(chosen.sum())
    assert abs((inputs[chosen] == MASK).mean() - 0.8) < five_sigma(0.8, N)


@settings(max_examples=200)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=1, max_size=40),
    specials=st.sets(st.integers(0, 120)),
    mask_prob=st.floats(0.05, 0.6),
    seed=st.integers(0, 2**32 - 1),
)
def test_whole_word_masking_never_splits_a_word(sizes, specials, mask_prob, seed):
    starts = np.concatenate([np.eye(1, s, dtype=bool)[0] for s in sizes])[None]  # (1, T)
    maskable = np.ones(starts.shape, dtype=bool)
    maskable[0, [i for i in specials if i < starts.shape[1]]] = False
    ids = np.arange(starts.shape[1])[None] + 10
    _, labels = mask_tokens(ids, maskable, mask_prob, MASK, V, np.random.default_rng(seed), starts)
    chosen = labels[0] != IGNORE_INDEX
    words = word_numbers(maskable, starts)[0]
    assert not chosen[words == 0].any()
    for w in range(1, words.max() + 1):
        assert len(set(chosen[words == w])) == 1  # all tokens of the word, or none
    assert chosen.sum() <= budget(maskable, mask_prob)[0]


@pytest.mark.parametrize("whole_words", [False, True])
def test_masks_repeat_under_a_seed_and_differ_between_draws(whole_words):
    ids = np.random.default_rng(4).integers(10, V, size=(8, 64))
    maskable = np.ones(ids.shape, dtype=bool)
    starts = np.random.default_rng(5).random(ids.shape) < 0.5 if whole_words else None
    a = mask_tokens(ids, maskable, 0.15, MASK, V, np.random.default_rng(6), starts)
    b = mask_tokens(ids, maskable, 0.15, MASK, V, np.random.default_rng(6), starts)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    rng = np.random.default_rng(6)
    first, second = (mask_tokens(ids, maskable, 0.15, MASK, V, rng, starts) for _ in range(2))
    assert not np.array_equal(first[1], second[1])  # dynamic masking: a fresh mask per draw


# --- word boundaries on real text: no tokenizer word, no jieba word is ever split --------------------------


@pytest.fixture(scope="module")
def zh_lines(shared_data: Path) -> list[str]:
    return list(itertools.islice(read_lines(shared_data / "zh_classic_novels/train.txt"), 200))


def _segmented(tmp_path: Path, lines: list[str], model: str, vocab: int, segmenter: str):
    """Token array, word starts and special flags of `lines` written to a file, and per token (up to any final
    <|endoftext|>) its line, character span and pre-tokenizer word, from encodings made apart."""
    path = tmp_path / "text.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tok = train_tokenizer(model, lines, vocab, workers=1)
    tokens = token_array([path], tok, tmp_path)
    starts = word_start_array([path], tok, segmenter, tokens, tmp_path)
    special = np.isin(tokens, [t.id for t in tok.added_tokens if t.special])
    tok.track_words = True
    encs = tok.encode_batch([line + "\n" for line in lines], add_special_tokens=False)
    where = [
        (n, a, b, w) for n, e in enumerate(encs) for (a, b), w in zip(e.offsets, e.word_ids, strict=True)
    ]
    return tokens, starts, special, where


def _check_never_split(tokens, starts, special, where, words_of, T: int = 96) -> None:
    """Hypothesis: windows of T tokens at any offset, masked with any seed, never split a word: the tokens
    that `words_of(line, start, end, word id)` puts in one word are all chosen or none."""

    @settings(max_examples=60)
    @given(offset=st.integers(0, len(where) - T), seed=st.integers(0, 2**32 - 1))
    def check(offset, seed):
        window = slice(offset, offset + T)
        rng = np.random.default_rng(seed)
        ids, maskable, flags = tokens[None, window], ~special[None, window], starts[None, window]
        chosen = mask_tokens(ids, maskable, 0.3, 0, 10**4, rng, flags)[1][0] != IGNORE_INDEX
        groups: dict = {}
        for i in range(T):
            for word in words_of(*where[offset + i]):
                groups.setdefault(word, set()).add(bool(chosen[i]))
        assert all(len(members) == 1 for members in groups.values())

    check()


@pytest.mark.parametrize("model,vocab", [("wordpiece", 1200), ("bpe", 600)])
def test_tokenizer_words_are_never_split(tmp_path, model, vocab):
    tokens, starts, special, where = _segmented(tmp_path, demo_corpus()[:400], model, vocab, "tokenizer")
    assert starts.mean() < 0.95  # some words have several tokens
    _check_never_split(tokens, starts, special, where, lambda line, a, b, word: [(line, word)])


@pytest.mark.parametrize("model,vocab", [("wordpiece", 4000), ("bpe", 800)])
def test_jieba_words_are_never_split(tmp_path, zh_lines, model, vocab):
    """Byte-level BPE puts a character's bytes into several tokens and one token across two jieba words."""
    jieba = pytest.importorskip("jieba")
    tokens, starts, special, where = _segmented(tmp_path, zh_lines, model, vocab, "jieba")
    spans = [list(jieba.tokenize(line + "\n")) for line in zh_lines]
    assert sum(e - s > 1 for line in spans for _, s, e in line) > 500  # multi-character words to keep whole
    char_word = [np.repeat(np.arange(len(line)), [e - s for _, s, e in line]) for line in spans]

    def words_of(line, a, b, _):  # the jieba words a token's characters overlap
        return {(line, w) for w in char_word[line][a : max(b, a + 1)]}

    _check_never_split(tokens, starts, special, where, words_of)


# --- pretraining runs -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, request) -> dict[str, Path]:
    """Chinese novel text and a WordPiece tokenizer ([CLS], [SEP], [MASK]); the embedded English corpus when
    ../shared/data is absent."""
    root = tmp_path_factory.mktemp("mlm")
    try:
        shared = request.getfixturevalue("shared_data")
        lines = list(itertools.islice(read_lines(shared / "zh_classic_novels/train.txt"), 330))
        vocab = 3000
    except pytest.skip.Exception:
        lines, vocab = demo_corpus()[:2000], 1500
    (root / "train.txt").write_text("\n".join(lines[:300]) + "\n", encoding="utf-8")
    (root / "valid.txt").write_text("\n".join(lines[300:]) + "\n", encoding="utf-8")
    train_tokenizer("wordpiece", lines[:300], vocab, workers=1).save(root / "tok.json")
    train_tokenizer("bpe", lines[:300], 400, workers=1).save(root / "bpe.json")  # no [MASK]
    return {
        "train": root / "train.txt",
        "valid": root / "valid.txt",
        "tok": root / "tok.json",
        "bpe": root / "bpe.json",
    }


def _config(corpus, out: Path, **overrides) -> PretrainConfig:
    settings = dict(
        train_files=[corpus["train"]],
        valid_files=[corpus["valid"]],
        tokenizer=corpus["tok"],
        output_dir=out,
        model={**TINY, "dropout": 0.1},  # dropout: the torch RNG must resume too
        objective="mlm",
        context_length=32,
        batch_size=8,
        steps=24,
        lr=3e-3,
        eval_every=6,
        eval_tokens=2048,
        checkpoint_every=1000,
        seed=0,
    )
    return PretrainConfig(**(settings | overrides))


def _losses(out: Path) -> list[tuple]:
    return [(r["step"], r["loss"], r["lr"], r.get("val_loss")) for r in read_metrics(out)]


def test_mlm_loss_falls_and_the_model_is_a_bert_shaped_encoder(corpus, tmp_path):
    folder = pretrain(_config(corpus, tmp_path / "run", steps=60, eval_every=20, model=TINY), progress=False)
    vals = [r["val_loss"] for r in read_metrics(tmp_path / "run") if "val_loss" in r]
    assert len(vals) == 3 and vals[-1] < vals[0] - 0.5, vals
    model, _ = load_model(folder)
    c = model.config
    assert (c.causal, c.norm, c.positional, c.mlm_head, c.type_vocab_size) == (
        False,
        "post",
        "learned",
        True,
        2,
    )


def test_validation_is_fixed_and_leaves_the_training_generator_alone(corpus, tmp_path):
    config = _config(corpus, tmp_path / "run", whole_word_masking=True)
    (tmp_path / "run").mkdir()
    tok = Tokenizer.load(corpus["tok"])
    objective = build_objective(config, tok, progress=False)
    torch.manual_seed(0)
    model = Transformer(config.model_config(tok.vocab_size, tok.fingerprint))
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    first = objective.evaluate(model)
    objective.loss(model, rng)  # a training draw in between changes nothing
    assert objective.evaluate(model) == first and math.isfinite(first)
    assert rng.bit_generator.state != state  # (the training draw did use the generator)


@pytest.mark.parametrize("segmenter", ["tokenizer", "jieba"])
def test_mlm_resume_is_exact(corpus, tmp_path, segmenter):
    if segmenter == "jieba":
        pytest.importorskip("jieba")
    wwm = dict(whole_word_masking=True, segmenter=segmenter)
    pretrain(_config(corpus, tmp_path / "whole", **wwm), progress=False)
    pretrain(_config(corpus, tmp_path / "cut", stop_after=10, **wwm), progress=False)
    pretrain(_config(corpus, tmp_path / "cut", resume=True, **wwm), progress=False)
    assert _losses(tmp_path / "cut") == _losses(tmp_path / "whole")
    assert any(p.name.startswith("words-") for p in (tmp_path / "whole").iterdir())


def test_mlm_checkpoint_finetunes_evaluates_and_loads_in_bert_for_masked_lm(corpus, tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    import llmlab

    folder = llmlab.pretrain(  # the Python API: BERT-shaped, learned positions unless told otherwise
        corpus["train"], corpus["valid"], corpus["tok"], tmp_path / "run", steps=4, objective="mlm",
        context_length=32, batch_size=8, model=TINY, precision="fp32", progress=False,
    )  # fmt: skip
    by_label = [[row for row in demo_classification() if row[1] == label][:12] for label in (0, 1)]
    for name, part in [
        ("train", [r for rows in by_label for r in rows[:8]]),
        ("dev", [r for rows in by_label for r in rows[8:]]),
    ]:
        with (tmp_path / f"{name}.csv").open("w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows([("text", "label"), *part])
    run = llmlab.finetune(
        folder,
        tmp_path / "train.csv",
        tmp_path / "dev.csv",
        "full",
        tmp_path / "ft",
        max_steps=2,
        batch_size=4,
        max_length=32,
        progress=False,
    )
    assert run.metrics["steps"] == 2 and 0 <= run.metrics["best_accuracy"] <= 1
    accuracy = llmlab.evaluate(tmp_path / "ft", tmp_path / "dev.csv", n_boot=50)["metrics"]["accuracy"]
    assert 0 <= accuracy <= 1
    assert main(["convert", "--to-hf", str(folder), "-o", str(tmp_path / "hf")]) == 0
    capsys.readouterr()
    hf = transformers.BertForMaskedLM.from_pretrained(tmp_path / "hf").eval()
    ours, _ = load_model(folder)
    ids = torch.randint(0, ours.config.vocab_size, (2, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = (ours.eval()(ids).logits - hf(input_ids=ids).logits).abs().max().item()
    assert diff <= 1e-5


# --- bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides,needle",
    [
        ({"model": {"causal": True}}, "objective mlm trains a bidirectional encoder"),
        ({"mask_prob": 1.0}, "mask_prob=1.0"),
        ({"context_length": 2}, "no room between [CLS] and [SEP]"),
        ({"segmenter": "jieba"}, "only matters with whole_word_masking"),
        ({"segmenter": "ltp", "whole_word_masking": True}, "unknown segmenter 'ltp'"),
        ({"objective": "causal", "whole_word_masking": True}, "belong to objective mlm"),
    ],
)
def test_config_refuses_bad_mlm_settings(corpus, tmp_path, overrides, needle):
    with pytest.raises(LlmlabError, match="pretrain config") as e:
        _config(corpus, tmp_path / "run", **overrides)
    assert needle in str(e.value) and "\n" not in str(e.value)


def _cli(corpus, out: Path, *extra: str) -> list[str]:
    return [
        "pretrain", "--train", str(corpus["train"]), "--valid", str(corpus["valid"]), "--tokenizer",
        str(corpus["tok"]), "-o", str(out), "--objective", "mlm", "--steps", "2", "--context", "16",
        "--batch-size", "2", "--d-model", "16", "--n-layers", "1", "--n-heads", "2", "--quiet", *extra,
    ]  # fmt: skip


def _fails(capsys, args: list[str], *needles: str) -> None:
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("llmlab: error: "), err
    for needle in needles:
        assert needle in err, err


def test_cli_mlm_runs_and_bad_input_fails_in_one_line(corpus, tmp_path, capsys, monkeypatch):
    assert main(_cli(corpus, tmp_path / "ok", "--whole-word-masking", "--mask-prob", "0.2")) == 0
    assert load_model(Path(capsys.readouterr().out.strip()))[0].config.mlm_head
    causal = tmp_path / "causal.json"
    causal.write_text(json.dumps({"causal": True, "vocab_size": 99}), encoding="utf-8")
    _fails(capsys, _cli(corpus, tmp_path / "a", "--model-config", str(causal)), "causal=true")
    tok = _cli(corpus, tmp_path / "b")
    tok[tok.index("--tokenizer") + 1] = str(corpus["bpe"])
    _fails(capsys, tok, str(corpus["bpe"]), "no mask token")
    monkeypatch.setitem(sys.modules, "jieba", None)  # as if jieba were not installed
    _fails(capsys, _cli(corpus, tmp_path / "c", "--whole-word-masking", "--segmenter", "jieba"), "llmlab[zh]")
    assert not any((tmp_path / name).exists() for name in "abc")  # refused runs leave nothing behind


def test_tokenizer_without_a_mask_token_is_refused(corpus):
    with pytest.raises(LlmlabError, match="no mask token"):
        mlm_tokens(Tokenizer.load(corpus["bpe"]), str(corpus["bpe"]))
