"""Every command against hostile input: one line on stderr, exit status 2, and the folder exactly as it was.

One row per hostile input (issue 14 lists the ones users met; the rest are their neighbours). Each row runs
`llmlab ARGS` in process inside a fresh copy of the fixture folder (tests/hostile/conftest.py), so "nothing
written, nothing destroyed" is checked on every file, the inputs included.
"""

from __future__ import annotations

import io
import os
import shlex
import socket
import sys

import pytest

from tests.hostile.conftest import assert_one_line_error, run_cli, snapshot

ROOT_CAN_WRITE_ANYWHERE = hasattr(os, "geteuid") and os.geteuid() == 0

# (id, arguments, a piece of the expected message)
# fmt: off
TOKENIZER = [
    ("train -o is the corpus", "tokenizer train --quiet --vocab-size 300 -o corpus.txt corpus.txt", "would destroy"),
    ("train -o is a folder", "tokenizer train --quiet -o adir corpus.txt", "is a folder"),
    ("train -o parent missing", "tokenizer train --quiet -o no/such/tok.json corpus.txt", "does not exist"),
    ("train non-UTF-8 corpus", "tokenizer train --quiet -o t.json latin1.txt", "--errors replace"),
    ("train vocab 0", "tokenizer train --quiet --vocab-size 0 -o t.json corpus.txt", "--vocab-size"),
    ("train vocab negative", "tokenizer train --quiet --vocab-size -5 -o t.json corpus.txt", "--vocab-size"),
    ("train coverage nan", "tokenizer train --quiet --model unigram --character-coverage nan -o t.json corpus.txt", "--character-coverage"),
    ("train min-frequency -1", "tokenizer train --quiet --min-frequency -1 -o t.json corpus.txt", "--min-frequency"),
    ("train workers 0", "tokenizer train --quiet --workers 0 -o t.json corpus.txt", "--workers"),
    ("train unknown option", "tokenizer train --quiet --bogus -o t.json corpus.txt", "--bogus"),
    ("encode --output is the input", "tokenizer encode --tokenizer tok.json --input corpus.txt --output corpus.txt", "would destroy"),
    ("encode --output is the tokenizer", "tokenizer encode --tokenizer tok.json --input corpus.txt --output tok.json", "would destroy"),
    ("encode --output is a folder", "tokenizer encode --tokenizer tok.json --input corpus.txt --output adir", "is a folder"),
    ("encode tokenizer missing", "tokenizer encode --tokenizer nope.json --input corpus.txt", "nope.json"),
    ("encode tokenizer is a folder", "tokenizer encode --tokenizer adir --input corpus.txt", "is a folder"),
    ("encode tokenizer 200000 deep", "tokenizer encode --tokenizer deep.json --input corpus.txt", "nested more than"),
    ("encode non-UTF-8 file", "tokenizer encode --tokenizer tok.json --input latin1.txt", "--errors replace"),
    ("encode non-UTF-8 stdin", "tokenizer encode --tokenizer tok.json", "<stdin>: not UTF-8"),
    ("encode input missing", "tokenizer encode --tokenizer tok.json --input nope.txt", "nope.txt"),
    ("encode input is a folder", "tokenizer encode --tokenizer tok.json --input adir", "is a folder"),
    ("decode words for ids", "tokenizer decode --tokenizer tok.json --input corpus.txt", "integer ids"),
    ("decode --output is the input", "tokenizer decode --tokenizer tok.json --input corpus.txt --output corpus.txt", "would destroy"),
    ("decode non-UTF-8 stdin", "tokenizer decode --tokenizer tok.json", "<stdin>: not UTF-8"),
    ("inspect 200000 deep", "tokenizer inspect deep.json", "nested more than"),
    ("inspect truncated", "tokenizer inspect trunc.json", "corrupt or truncated"),
    ("inspect a folder", "tokenizer inspect adir", "is a folder"),
    ("inspect non-UTF-8", "tokenizer inspect latin1.txt", "not UTF-8"),
    ("inspect a JSON array", "tokenizer inspect array.json", "array.json"),
]
TINY = "--quiet --steps 2 --context 8 --batch-size 2 --d-model 16 --n-layers 1 --n-heads 2"
PRETRAIN = [
    ("-o is the train file", f"pretrain --train corpus.txt --valid corpus.txt --tokenizer tok.json -o corpus.txt {TINY}", "corpus.txt"),
    ("-o is the tokenizer", f"pretrain --train corpus.txt --valid corpus.txt --tokenizer tok.json -o tok.json {TINY}", "tok.json"),
    ("--lr inf", f"pretrain --train corpus.txt --valid corpus.txt --tokenizer tok.json -o lm {TINY} --lr inf", "--lr"),
    ("--lr nan", f"pretrain --train corpus.txt --valid corpus.txt --tokenizer tok.json -o lm {TINY} --lr nan", "--lr"),
    ("--lr 0", f"pretrain --train corpus.txt --valid corpus.txt --tokenizer tok.json -o lm {TINY} --lr 0", "--lr"),
    ("--steps 0", f"pretrain --train corpus.txt --valid corpus.txt --tokenizer tok.json -o lm {TINY} --steps 0", "--steps"),
    ("--seed -1", f"pretrain --train corpus.txt --valid corpus.txt --tokenizer tok.json -o lm {TINY} --seed -1", "--seed"),
    ("one-line train file", f"pretrain --train oneline.txt --valid corpus.txt --tokenizer tok.json -o lm {TINY}", "oneline.txt"),
    ("non-UTF-8 train file", f"pretrain --train latin1.txt --valid corpus.txt --tokenizer tok.json -o lm {TINY}", "--errors replace"),
    ("-o is an existing file", f"pretrain --train corpus.txt --valid corpus.txt --tokenizer tok.json -o existing.txt {TINY}", "not a folder"),
    ("train file missing", f"pretrain --train nope.txt --valid corpus.txt --tokenizer tok.json -o lm {TINY}", "nope.txt"),
    ("--resume without a run", f"pretrain --train corpus.txt --valid corpus.txt --tokenizer tok.json -o lm {TINY} --resume", "no checkpoint"),
]
CONVERT = [
    ("--to-hf X -o X", "convert --to-hf base -o base", "would destroy"),
    ("--from-hf X -o X", "convert --from-hf base -o base", "would destroy"),
    ("-o inside the source", "convert --to-hf base -o base/hf", "inside the input"),
    ("-o contains the source", "convert --to-hf base -o .", "contains the input"),
    ("source missing", "convert --from-hf nope -o out", "nope"),
    ("source is a file", "convert --to-hf corpus.txt -o out", "is a file"),
    ("-o is a file", "convert --to-hf base -o existing.txt", "not a folder"),
]
FT = "--quiet --max-steps 1 --batch-size 4 --max-length 16"
FINETUNE = [
    ("--base X -o X", f"finetune --base base --train train.csv --dev dev.csv -o base {FT}", "would destroy"),
    ("-o is the train file", f"finetune --base base --train train.csv --dev dev.csv -o train.csv {FT}", "train.csv"),
    ("-o inside the base", f"finetune --base base --train train.csv --dev dev.csv -o base/ft {FT}", "inside the input"),
    ("label 1000000000", f"finetune --base base --train biglabel.csv --dev dev.csv -o ft {FT}", "label 1000000000"),
    ("negative label", f"finetune --base base --train neglabel.csv --dev dev.csv -o ft {FT}", "label"),
    ('word label', f'finetune --base base --train textlabel.csv --dev dev.csv -o ft {FT}', "'positive'"),
    ("empty text", f"finetune --base base --train emptytext.csv --dev dev.csv -o ft {FT}", "empty or missing text"),
    ("duplicated header", f"finetune --base base --train dup.csv --dev dev.csv -o ft {FT}", "appears twice"),
    ("ragged row", f"finetune --base base --train ragged.csv --dev dev.csv -o ft {FT}", "line 3: 3 fields"),
    ("CR-only line ends", f"finetune --base base --train cr.csv --dev dev.csv -o ft {FT}", "CR-only"),
    ("unterminated quote", f"finetune --base base --train unterminated.csv --dev dev.csv -o ft {FT}", "unterminated quote"),
    ("non-UTF-8 CSV", f"finetune --base base --train latin1.csv --dev dev.csv -o ft {FT}", "line 2 is not UTF-8"),
    ("JSONL 200000 deep", f"finetune --base base --train deep.jsonl --dev dev.csv -o ft {FT}", "nested more than"),
    ("--lr inf", f"finetune --base base --train train.csv --dev dev.csv -o ft {FT} --lr inf", "--lr"),
    ("--lr -1", f"finetune --base base --train train.csv --dev dev.csv -o ft {FT} --lr -1", "--lr"),
    ("--batch-size 0", f"finetune --base base --train train.csv --dev dev.csv -o ft {FT} --batch-size 0", "--batch-size"),
    ("--warmup-ratio 2", f"finetune --base base --train train.csv --dev dev.csv -o ft {FT} --warmup-ratio 2", "--warmup-ratio"),
    ("--dropout nan", f"finetune --base base --train train.csv --dev dev.csv -o ft {FT} --dropout nan", "--dropout"),
    ("--max-length 0", f"finetune --base base --train train.csv --dev dev.csv -o ft {FT} --max-length 0", "--max-length"),
    ("--lora-rank 0", f"finetune --base base --train train.csv --dev dev.csv -o ft {FT} --method lora --lora-rank 0", "--lora-rank"),
    ("base missing", f"finetune --base nope --train train.csv --dev dev.csv -o ft {FT}", "nope"),
    ("base is a file", f"finetune --base corpus.txt --train train.csv --dev dev.csv -o ft {FT}", "is a file"),
    ("train is a folder", f"finetune --base base --train adir --dev dev.csv -o ft {FT}", "is a folder"),
    ("unknown method", f"finetune --base base --train train.csv --dev dev.csv -o ft {FT} --method magic", "magic"),
    ("compare-methods -o is the train file", "compare-methods --base base --train train.csv --dev dev.csv -o train.csv --max-steps 1", "train.csv"),
]
EVALUATE = [
    ("--predictions is the data", "evaluate linear dev.csv --predictions dev.csv", "would destroy"),
    ("--predictions is a folder", "evaluate linear dev.csv --predictions adir", "is a folder"),
    ("--report inside the model", "evaluate linear dev.csv --report linear/r.html", "inside the input"),
    ("--report parent missing", "evaluate linear dev.csv --report no/such/r.html", "does not exist"),
    ("--report is --predictions", "evaluate linear dev.csv --predictions p.csv --report p.csv", "would destroy"),
    ("--n-boot 0", "evaluate linear dev.csv --n-boot 0", "--n-boot"),
    ("ragged data", "evaluate linear ragged.csv", "3 fields"),
    ("hand-edited baseline.json", "evaluate badlinear dev.csv", "labels"),
    ("an ensemble whose class lists differ", "evaluate linear linear3 dev.csv", "linear3"),
    ("corrupt predictions", "evaluate --from-predictions preds_bad.csv", "preds_bad.csv"),
    ("baseline label 1000000000", "baseline biglabel.csv -o b", "label 1000000000"),
    ("baseline punctuation only", "baseline punct.csv -o b", "no usable features"),
    ("baseline -o is the train file", "baseline train.csv -o train.csv", "train.csv"),
    ("baseline -o is a file", "baseline train.csv -o existing.txt", "not a folder"),
    ("baseline --c 0", "baseline train.csv -o b --c 0", "--c"),
    ("baseline --c nan", "baseline train.csv -o b --c nan", "--c"),
    ("baseline --step 0", "baseline train.csv -o b --step 0", "--step"),
    ("diagnose 200000 deep", "diagnose deeprun", "nested more than"),
    ("diagnose string losses", "diagnose strrun", "not a number"),
    ('diagnose a list', 'diagnose listrun', "'history' list"),
    ("diagnose non-UTF-8", "diagnose latin1run", "not UTF-8"),
    ("diagnose missing run", "diagnose nope", "nope"),
    ("diagnose --report is history.json", "diagnose run --report run/history.json", "would destroy"),
]
TUNE = [
    ("--worker for an unknown study", "tune --worker -o study --objective linear", "no study storage"),
    ("-o is the train file", "tune -o train.csv --train train.csv --dev dev.csv --objective linear --quiet", "train.csv"),
    ("--trials 0", "tune -o study --train train.csv --dev dev.csv --objective linear --trials 0", "--trials"),
    ("garbage --storage", "tune -o study --train train.csv --dev dev.csv --objective linear --storage ::nonsense::", "not a database URL"),
    ("train missing", "tune -o study --train nope.csv --dev dev.csv --objective linear --quiet", "nope.csv"),
]
ABTEST = [
    ("compare --report is the data", "abtest compare linear linear dev.csv --report dev.csv", "would destroy"),
    ("compare --n-boot 0", "abtest compare linear linear dev.csv --n-boot 0", "--n-boot"),
    ("compare --alpha nan", "abtest compare linear linear dev.csv --alpha nan", "--alpha"),
    ("compare --alpha 1.5", "abtest compare linear linear dev.csv --alpha 1.5", "--alpha"),
    ("report on a store that does not exist", "abtest report --store nope.db --experiment exp", "no such event log"),
    ("report on a garbage file", "abtest report --store garbage.db --experiment exp", "garbage.db"),
    ("report on another SQLite file", "abtest report --store other.db --experiment exp", "not an llmlab event log"),
    ("report unknown experiment", "abtest report --store events.db --experiment nope", "no experiment named"),
    ("report --report is the store", "abtest report --store events.db --experiment exp --report events.db", "would destroy"),
    ("report ragged covariates", "abtest report --store events.db --experiment exp --covariate cov_ragged.csv", "3 fields"),
    ("report infinite covariate", "abtest report --store events.db --experiment exp --covariate cov_inf.csv", "finite"),
    ("report --alpha nan", "abtest report --store events.db --experiment exp --alpha nan", "--alpha"),
    ("plan --ratio 0", "abtest plan --baseline 0.1 --mde 0.01 --ratio 0", "--ratio"),
    ("plan --n -5", "abtest plan --baseline 0.1 --mde 0.01 --n -5", "--n"),
    ("plan --baseline 0", "abtest plan --baseline 0 --mde 0.01", "--baseline"),
    ("plan --baseline 1.5", "abtest plan --baseline 1.5 --mde 0.01", "--baseline"),
    ("plan --power 1", "abtest plan --baseline 0.1 --mde 0.01 --power 1", "--power"),
    ("simulate --users 0", "abtest simulate --url http://127.0.0.1:9 --rate A=0.1 --users 0", "--users"),
    ("simulate --visits -1", "abtest simulate --url http://127.0.0.1:9 --rate A=0.1 --visits -1", "--visits"),
    ("simulate --clients 0", "abtest simulate --url http://127.0.0.1:9 --rate A=0.1 --clients 0", "--clients"),
    ("simulate --experiments 0", "abtest simulate --experiments 0", "--experiments"),
    ("simulate --batch -3", "abtest simulate --batch -3", "--batch"),
    ("simulate --peeks 0", "abtest simulate --peeks 0", "--peeks"),
    ("simulate --baseline 1.2", "abtest simulate --baseline 1.2", "--baseline"),
    ("simulate --url not http", "abtest simulate --url ftp://x --rate A=0.1", "expected http"),
    ("simulate --url unreachable", "abtest simulate --url http://127.0.0.1:9 --rate A=0.1 --rate B=0.1", "cannot reach"),
]
SERVE = [
    ("--port 70000", "serve --experiment e --variant A=linear --variant B=linear --port 70000", "--port"),
    ("--port 0", "serve --experiment e --variant A=linear --variant B=linear --port 0", "--port"),
    ("--host unresolvable", "serve --experiment e --variant A=linear --variant B=linear --host nosuch.invalid --store s.db", "cannot resolve"),
    ("variant model missing", "serve --experiment e --variant A=linear --variant B=nope --store s.db", "nope"),
    ("--split with three shares", "serve --experiment e --variant A=linear --variant B=linear --split 50/30/20 --store s.db", "--split"),
    ("--split inf/1", "serve --experiment e --variant A=linear --variant B=linear --split inf/1 --store s.db", "--split"),
    ("--split 0/0", "serve --experiment e --variant A=linear --variant B=linear --split 0/0 --store s.db", "--split"),
    ("one variant named twice", "serve --experiment e --variant A=linear --variant A=linear --store s.db", "twice"),
    ("experiment exists with other models", "serve --experiment exp --variant A=linear --variant B=linear --store events.db --port PORT", "already exists"),
    ("port already taken", "serve --experiment e --variant A=linear --variant B=linear --store s.db --port BUSY", "cannot listen"),
    ("port taken: the experiment is not recorded", "serve --experiment fresh --variant A=linear --variant B=linear --store events.db --port BUSY", "cannot listen"),
]
OTHER = [
    ("study --threads 0", "study positions -o pos --threads 0", "--threads"),
    ("study -o is a file", "study positions -o existing.txt --quick", "not a folder"),
    ("study --data missing", "study positions -o pos --data nope --quick", "nope"),
    ("demo --out is a file", "demo --out existing.txt", "not a folder"),
    ("unknown command", "frobnicate", "frobnicate"),
]
# fmt: on
TABLE = [
    (f"{group}: {name}", args, needle)
    for group, rows in [
        ("tokenizer", TOKENIZER),
        ("pretrain", PRETRAIN),
        ("convert", CONVERT),
        ("finetune", FINETUNE),
        ("evaluate", EVALUATE),
        ("tune", TUNE),
        ("abtest", ABTEST),
        ("serve", SERVE),
        ("other", OTHER),
    ]
    for name, args, needle in rows
]


READ_ONLY = [
    "tokenizer train --quiet -o ro/t.json corpus.txt",
    "tokenizer encode --tokenizer tok.json --input corpus.txt --output ro/ids.txt",
    "tokenizer decode --tokenizer tok.json --input ids.txt --output ro/text.txt",
    "baseline train.csv -o ro/b",
    "evaluate linear dev.csv --predictions ro/p.csv",
    "evaluate linear dev.csv --report ro/r.html",
    "abtest compare linear linear dev.csv --report ro/r.html",
    f"pretrain --train corpus.txt --valid corpus.txt --tokenizer tok.json -o ro/lm {TINY}",
]


def _must_not_serve(self, sockets=None):
    raise AssertionError("the server started on hostile input")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refused_and_unchanged(work, capsys, argv: list[str], needle: str) -> None:
    """Run `llmlab ARGV` in `work`: a one-line error containing `needle`, and every file as it was."""
    before = snapshot(work)
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, needle)
    assert snapshot(work) == before


@pytest.mark.parametrize(("args", "needle"), [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_hostile_input_is_one_line_and_changes_nothing(work, capsys, monkeypatch, args, needle):
    stdin = io.TextIOWrapper(io.BytesIO("caf\xe9\n".encode("latin-1")), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    monkeypatch.setattr("uvicorn.Server.run", _must_not_serve)
    argv = shlex.split(args.replace("PORT", str(_free_port())))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        argv = [str(busy.getsockname()[1]) if a == "BUSY" else a for a in argv]
        refused_and_unchanged(work, capsys, argv, needle)


@pytest.mark.parametrize("args", READ_ONLY)
def test_read_only_output_folder(work, capsys, monkeypatch, args):
    (work / "ids.txt").write_text("1 2 3\n", encoding="utf-8")
    (work / "ro").mkdir()
    if ROOT_CAN_WRITE_ANYWHERE:  # root writes into a folder without w bits: stand in for a read-only mount
        real = os.access
        monkeypatch.setattr("llmlab.validate.os.access", lambda p, mode: "ro" not in str(p) and real(p, mode))
    (work / "ro").chmod(0o555)
    try:
        refused_and_unchanged(work, capsys, shlex.split(args), "read-only")
    finally:
        (work / "ro").chmod(0o755)


@pytest.mark.parametrize(
    "args",
    [
        "tokenizer encode --tokenizer tok.json --input corpus.txt --output out.txt",
        "tokenizer train --quiet --vocab-size 300 -o t.json corpus.txt",
        "evaluate linear dev.csv --report r.html",
    ],
)
def test_a_write_that_fails_underneath_is_one_line(work, capsys, monkeypatch, args):
    """A disk that fills up or a mount that turns read-only after the checks: still one line, no file."""

    def refuse(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr("llmlab.io.tempfile.mkstemp", refuse)
    refused_and_unchanged(work, capsys, shlex.split(args), "Read-only file system")
