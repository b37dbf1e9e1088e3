"""WordPiece model and trainer: worked examples, HF `models.WordPiece` parity on real words, HF trainer parity."""

from __future__ import annotations

import csv
import json
from collections import Counter

import pytest

from llmlab.errors import LlmlabError
from llmlab.tokenizer.normalize import BertNormalizer
from llmlab.tokenizer.pretokenize import BertPreTokenizer
from llmlab.tokenizer.wordpiece import WordPiece, train_wordpiece

hf = pytest.importorskip("tokenizers")


def texts(path, limit=None):
    with open(path, encoding="utf-8", newline="") as f:
        rows = [row[0] for row in csv.reader(f)][1:]
    return rows[:limit]


def test_greedy_longest_match_worked_examples():
    wp = WordPiece(
        {"[UNK]": 0, "ba": 1, "##na": 2, "b": 3, "##a": 4, "##n": 5, "un": 6, "##aff": 7, "##able": 8}
    )
    assert wp.tokenize("banana") == [(1, 0, 2), (2, 2, 4), (2, 4, 6)]
    assert wp.tokenize("unaffable") == [(6, 0, 2), (7, 2, 5), (8, 5, 9)]  # BERT's docstring example
    assert wp.tokenize("nanana") == [(0, 0, 6)]  # cannot start with "na": the whole word is [UNK]
    assert wp.tokenize("banx") == [(0, 0, 4)]
    assert wp.tokenize("") == []
    assert wp.tokenize("banana") == [(1, 0, 2), (2, 2, 4), (2, 4, 6)]  # from the cache, unchanged


def test_long_words_are_unknown_as_in_bert():
    wp = WordPiece({"[UNK]": 0, "a": 1, "##a": 2}, max_input_chars_per_word=5)
    assert len(wp.tokenize("aaaaa")) == 5
    assert wp.tokenize("aaaaaa") == [(0, 0, 6)]


def test_missing_unk_is_a_clear_error():
    wp = WordPiece({"a": 0}, unk_token="[UNK]")
    with pytest.raises(LlmlabError, match=r"unk_token '\[UNK\]' is not in the vocabulary"):
        wp.tokenize("b")


def test_lookups_and_json_round_trip():
    wp = WordPiece(
        {"[UNK]": 0, "a": 1, "##b": 2}, continuing_subword_prefix="##", max_input_chars_per_word=50
    )
    assert (wp.token_to_id("##b"), wp.id_to_token(1), wp.token_to_id("zz"), wp.id_to_token(9)) == (
        2,
        "a",
        None,
        None,
    )
    d = wp.to_hf()
    assert d == {
        "type": "WordPiece",
        "unk_token": "[UNK]",
        "continuing_subword_prefix": "##",
        "max_input_chars_per_word": 50,
        "vocab": {"[UNK]": 0, "a": 1, "##b": 2},
    }
    again = WordPiece.from_hf(json.loads(json.dumps(d)))
    assert again.to_hf() == d
    ref = hf.models.WordPiece(d["vocab"], unk_token="[UNK]", max_input_chars_per_word=50)
    assert json.loads(hf.Tokenizer(ref).to_str())["model"] == d


@pytest.mark.parametrize(
    "bad", [{"type": "BPE", "vocab": {}}, {"type": "WordPiece"}, {"vocab": {"a": "x"}}, []]
)
def test_from_hf_rejects_malformed_models(bad):
    with pytest.raises(LlmlabError):
        WordPiece.from_hf(bad)


def test_same_tokens_as_hf_on_every_word_of_real_text(shared_data, minilm_dir):
    """Every distinct pre-tokenized word of SST-2 dev/test and a Chinese set, split by the MiniLM vocabulary."""
    lines = texts(shared_data / "sst2" / "dev.csv") + texts(shared_data / "sst2" / "test.csv")
    lines += texts(shared_data / "chnsenticorp_htl" / "dev.csv")
    norm, pre = BertNormalizer(), BertPreTokenizer()
    words = sorted({w for line in lines for w, _, _ in pre.split(norm.normalize(line))})
    words += ["x" * 100, "x" * 101, "unaffable", "##", "a##b"]
    model_d = json.loads((minilm_dir / "tokenizer.json").read_text(encoding="utf-8"))["model"]
    ours = WordPiece.from_hf(model_d)
    ref = hf.models.WordPiece(model_d["vocab"], unk_token="[UNK]")
    for word in words:
        got = ours.tokenize(word)
        want = ref.tokenize(word)
        assert [i for i, _, _ in got] == [t.id for t in want], word
        # HF gives byte offsets; compare them as characters
        assert [
            (len(word.encode()[:a].decode()), len(word.encode()[:b].decode()))
            for a, b in (t.offsets for t in want)
        ] == [(a, b) for _, a, b in got], word


def in_id_order(vocab: dict[str, int], leave_out: set[str]) -> list[str]:
    return [t for t, _ in sorted(vocab.items(), key=lambda item: item[1]) if t not in leave_out]


def same_up_to_tie_order(ours: list[str], theirs: list[str]) -> bool:
    """Equal, except that runs of positions where they differ may hold the same tokens in another order, and
    the last few may differ (a tie at the cut-off)."""
    if len(ours) != len(theirs):
        return False
    differ = [i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b]
    runs, start = [], None
    for k, i in enumerate(differ):
        start = i if start is None else start
        if k + 1 == len(differ) or differ[k + 1] != i + 1:
            runs.append((start, i + 1))
            start = None
    return all(sorted(ours[a:b]) == sorted(theirs[a:b]) or a >= len(ours) - 5 for a, b in runs)


@pytest.mark.parametrize(("corpus", "lines"), [("sst2", 10000), ("chnsenticorp_htl", 3000)])
def test_trainer_keeps_hf_wordpiece_trainer_vocabulary(shared_data, corpus, lines):
    """Same word counts and settings as HF's WordPieceTrainer: the same vocabulary.

    HF numbers the "##c" alphabet in hash-map order, which changes from run to run and so also breaks some ties
    between equally frequent pairs differently: ids of "##c" are not compared, and merges of equal count may
    come in another order.
    """
    lines = texts(shared_data / corpus / "train.csv", lines)
    norm, pre = BertNormalizer(), BertPreTokenizer()
    counts = Counter(w for line in lines for w, _, _ in pre.split(norm.normalize(line)))
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    alphabet = {c for w in counts for c in w}
    size = len(specials) + len(alphabet) + len({"##" + c for w in counts for c in w[1:]}) + 60
    ours = train_wordpiece(counts, size, special_tokens=specials)
    ref = hf.Tokenizer(hf.models.WordPiece(unk_token="[UNK]"))
    ref.normalizer = hf.normalizers.BertNormalizer()
    ref.pre_tokenizer = hf.pre_tokenizers.BertPreTokenizer()
    trainer = hf.trainers.WordPieceTrainer(vocab_size=size, special_tokens=specials, show_progress=False)
    ref.train_from_iterator(lines, trainer=trainer)
    want = json.loads(ref.to_str())["model"]
    hashed = {t for t in want["vocab"] if t.startswith("##") and len(t) == 3}
    assert hashed == {t for t in ours.vocab if t.startswith("##") and len(t) == 3}
    assert same_up_to_tie_order(in_id_order(ours.vocab, hashed), in_id_order(want["vocab"], hashed))
    assert (ours.unk_token, ours.continuing_subword_prefix, ours.max_input_chars_per_word) == (
        want["unk_token"],
        want["continuing_subword_prefix"],
        want["max_input_chars_per_word"],
    )


def test_trainer_rejects_unknown_criterion():
    with pytest.raises(LlmlabError, match="criterion"):
        train_wordpiece({"ab": 3}, 10, criterion="entropy")


def test_likelihood_criterion_trains_a_usable_vocabulary():
    counts = {"hug": 10, "pug": 5, "pun": 12, "bun": 4, "hugs": 5}
    wp = train_wordpiece(counts, 20, special_tokens=["[UNK]"], criterion="likelihood")
    assert len(wp.vocab) <= 20 and "##u" in wp.vocab
    for word in counts:
        assert "".join(wp.id_to_token(i).removeprefix("##") for i, _, _ in wp.tokenize(word)) == word
