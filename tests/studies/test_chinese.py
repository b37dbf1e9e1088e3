"""`llmlab study chinese --quick`: runs end to end, checks its own tables, resumes; its tokenizers load in HF
`tokenizers` with identical ids; tokenizer statistics on known text."""

from __future__ import annotations

import json

import pytest

from llmlab.cli import main
from llmlab.errors import LlmlabError
from llmlab.studies.chinese import QUICK, check_results
from llmlab.studies.chinese.run import study_jobs
from llmlab.studies.chinese.tokenizers import SPECIALS, TokenizerSpec, tokenizer_stats, train_study_tokenizer
from llmlab.tokenizer.train import train_tokenizer

LINES = [
    "这家酒店的服务很好，房间也很干净，下次还会再来。",
    "价格太贵了，质量一般，不推荐购买。",
    "物流很快，包装完好，东西不错！",
    "早餐种类太少，空调还坏了，失望。",
] * 40


def test_tokenizer_stats_count_tokens_and_unknown_characters():
    tok = train_tokenizer("wordpiece", ["你好世界"] * 10, 50, special_tokens=SPECIALS, workers=1)
    stats = tokenizer_stats(tok, ["你好", "你坏世"])  # 坏 is not in the vocabulary
    assert stats["tokens_per_char"] == 1.0  # BERT splits every ideograph: one token per character
    assert stats["unk_rate"] == pytest.approx(1 / 5) and stats["unk_char_rate"] == pytest.approx(1 / 5)


@pytest.mark.parametrize("family", ["wordpiece", "bpe", "unigram"])
def test_study_tokenizers_frame_with_cls_and_sep_and_match_hf(family):
    tokenizers = pytest.importorskip("tokenizers")
    tok = train_study_tokenizer(TokenizerSpec(family, 300), LINES, len(set("".join(LINES))))
    theirs = tokenizers.Tokenizer.from_str(json.dumps(tok.to_hf()))
    for line in LINES[:4]:
        ids = tok.encode(line).ids
        assert ids[0] == tok.token_to_id("[CLS]") and ids[-1] == tok.token_to_id("[SEP]")
        assert ids == theirs.encode(line).ids
    assert all(tok.token_to_id(t) is not None for t in SPECIALS)


def test_wordpiece_keeps_the_most_frequent_characters_when_they_do_not_fit():
    alphabet = len(set("".join(LINES)))
    tok = train_study_tokenizer(TokenizerSpec("wordpiece", alphabet), LINES, alphabet)
    assert tok.vocab_size <= alphabet  # limit_alphabet made room for the special tokens
    assert tokenizer_stats(tok, LINES)["unk_char_rate"] > 0


def test_each_encoder_is_fine_tuned_on_each_set_and_method(tmp_path):
    from llmlab.studies.chinese.jobs import Context

    jobs = study_jobs(Context(tmp_path, tmp_path, QUICK, "fp32"))
    keys = [j.key for j in jobs]
    assert len([k for k in keys if k.startswith("tokenizer-")]) == 6
    assert len([k for k in keys if k.startswith("pretrain-")]) == 7  # 6 + the whole-word ablation
    fake = {"folder": str(tmp_path)}
    finetunes = [j.key for j in jobs if j.then for j in j.then(fake)]
    assert len(finetunes) == 6 * 4 + 2 and len(set(finetunes)) == len(finetunes)


def test_a_data_folder_without_the_corpora_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    assert main(["study", "chinese", "-o", str(tmp_path / "out"), "--data", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err.strip()
    assert "zh_classic_novels/train.txt: not found" in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_quick_study_runs_checks_its_tables_and_resumes(tmp_path, capsys, shared_data):
    out = tmp_path / "chinese"
    argv = ["study", "chinese", "-o", str(out), "--quick", "--quiet", "--data", str(shared_data)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert (
        "| tokenizer | vocab | ChnSentiCorp tokens/char" in printed and "| masking | MLM dev loss" in printed
    )
    results = json.loads((out / "chinese.json").read_text())
    assert len(results["tokenizers"]) == 6 and len(results["pretraining"]) == 7
    assert len(results["rows"]) == 6 * 4 + 2 + 2  # encoders, ablation, TF-IDF (QUICK has no MiniLM)
    for row in results["rows"]:
        low, high = row["accuracy_ci"]
        assert 0 <= low <= row["accuracy"] <= high <= 1
    for t in results["tokenizers"]:
        wordpiece = t["family"] == "wordpiece"
        assert all((0.9 < s["tokens_per_char"] <= 1.0) == wordpiece for s in t["dev"].values())
    report = (out / "report.html").read_text()
    assert report.count("data:image/png") == 3 and "Ablation: whole-word masking" in report
    stamp = (out / "results" / "pretrain-bpe-6k.json").stat().st_mtime_ns
    assert main(argv) == 0  # every job is done: the rerun only reads the results back
    assert (out / "results" / "pretrain-bpe-6k.json").stat().st_mtime_ns == stamp
    results["rows"][0]["accuracy"] = 1.5
    with pytest.raises(LlmlabError, match="accuracy 1.5 not inside"):
        check_results(results)
