"""Reading labelled data: CSV and JSONL, pairs, streaming with a seeded shuffle buffer, errors, collation."""

from __future__ import annotations

import random

import pytest
import torch

from llmlab.errors import LlmlabError
from llmlab.finetuning.data import (
    Collator,
    Example,
    StreamingExamples,
    epoch_examples,
    iter_examples,
    label_names,
    read_examples,
    shuffle_buffer,
)
from tests.finetuning.test_trainer import tokenizer_fixture  # noqa: F401


def test_reads_real_sst2_and_chinese_csv(shared_data):
    sst2 = read_examples(shared_data / "sst2" / "dev.csv")
    assert len(sst2) == 872 and {e.label for e in sst2} == {0, 1}
    zh = read_examples(shared_data / "chnsenticorp_htl" / "train.csv", max_examples=5)
    assert len(zh) == 5 and zh[0].text.startswith("酒店")


def test_jsonl_with_pairs(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        '{"text": "a man eats", "text_pair": "someone eats", "label": 1}\n\n{"text": "x", "label": "0"}\n'
    )
    assert read_examples(path) == [Example("a man eats", 1, "someone eats"), Example("x", 0)]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("a.csv", b"sentence,label\nhi,0\n", "no 'text' column"),
        ("b.csv", b"text,label\nhi,0\nho,1.5\n", "line 3: label '1.5' is not an integer"),
        ("c.csv", b"text,label\nhi,0\n  ,1\n", "line 3: empty or missing text"),
        ("d.csv", b"text,label\nhi,0\nh\xffi,1\n", "line 3 is not UTF-8"),
        ("e.jsonl", b'{"text": "hi", "label": 0}\n{"text": "hi"\n', "line 2: not JSON"),
        ("f.jsonl", b'{"text": "hi", "label": -1}\n', "line 1: label -1"),
    ],
)
def test_bad_input_is_one_line_error_naming_file_and_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(LlmlabError) as info:
        read_examples(path)
    assert str(path) in str(info.value) and message in str(info.value) and "\n" not in str(info.value)


def test_unreadable_file(tmp_path):
    with pytest.raises(LlmlabError, match="cannot read"):
        read_examples(tmp_path / "missing.csv")


def test_label_names_and_a_dev_class_unseen_in_training():
    train = [Example("a", 0), Example("b", 2)]
    assert label_names(train, [Example("c", 2)], "dev.csv") == ["0", "1", "2"]
    with pytest.raises(LlmlabError, match="dev.csv: class 1 does not occur"):
        label_names(train, [Example("c", 1)], "dev.csv")


def test_shuffle_buffer_is_a_seeded_permutation():
    items = list(range(1000))
    a = list(shuffle_buffer(items, 64, random.Random(1)))
    assert sorted(a) == items and a != items
    assert (
        a
        == list(shuffle_buffer(items, 64, random.Random(1)))
        != list(shuffle_buffer(items, 64, random.Random(2)))
    )


def test_streaming_epochs_match_by_seed_and_differ_by_epoch(shared_data):
    stream = StreamingExamples(shared_data / "sst2" / "dev.csv", buffer_size=100)
    first = [e.text for e in epoch_examples(stream, 0, 0)]
    assert first == [e.text for e in epoch_examples(stream, 0, 0)]
    assert sorted(first) == sorted(e.text for e in iter_examples(stream.path)) and first != [
        e.text for e in epoch_examples(stream, 0, 1)
    ]


def test_collation_truncates_pads_dynamically_and_types_pairs(tokenizer):
    collate = Collator(tokenizer, max_length=8, token_types=True)
    batch = collate(
        [Example("a very long sentence that will surely be cut here", 1), Example("hi", 0, "there")]
    )
    assert batch["input_ids"].shape == (2, 8) and batch["labels"].tolist() == [1, 0]
    assert batch["attention_mask"][1].tolist() == [1] * 5 + [0] * 3  # [CLS] hi [SEP] there [SEP]
    assert batch["token_type_ids"][1].tolist() == [0, 0, 0, 1, 1, 0, 0, 0]
    short = collate([Example("hi", 0)])
    assert short["input_ids"].shape == (1, 3)  # padded to the batch's longest, not to max_length
    assert tokenizer.padding is not None  # the model's tokenizer keeps its own settings
    assert torch.equal(short["input_ids"][0], torch.tensor(tokenizer.encode("hi").ids[:3]))
