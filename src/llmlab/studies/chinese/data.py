"""The Chinese study's data: the unlabelled corpus (tokenizers and masked-LM pretraining) and the two labelled
sets, read from the shared data folder (see its README.md).

- Tokenizer corpus: zh_classic_novels and zh_poetry train.txt, plus all the train texts (not the labels) of
  chnsenticorp_htl and online_shopping_9cats, one text per line, written once to OUT/data/corpus.txt.
- Pretraining text: the train texts of the two labelled sets alone (OUT/data/reviews.txt, 8.3 MB, 2.9M
  characters): at a budget of a few million tokens, in-domain text is what the encoder can learn most from
  (domain-adaptive pretraining, Gururangan et al. 2020, "Don't Stop Pretraining"); 18th-century novels and
  Song lyrics would take half of it. Validation text for the masked-LM loss: the dev texts of both sets
  (OUT/data/valid.txt), never trained on. No label is read for either.
- Labelled sets: train.csv (the first `train_rows` rows: the files are shuffled, so that is a random sample)
  and dev.csv (the first `dev_rows` rows, the same way). The fine-tuning loop evaluates once, at its last
  step, on a small slice of dev (OUT/data/<set>-dev-head.csv), so no dev accuracy ever picks a step; the
  study then predicts the dev rows itself.
"""

from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass
from pathlib import Path

from llmlab.csvfile import csv_rows
from llmlab.errors import LlmlabError
from llmlab.io import atomic_open, atomic_write_text, read_lines

CORPORA = ("zh_classic_novels", "zh_poetry")
LABELLED = ("chnsenticorp_htl", "online_shopping_9cats")
TRAINER_DEV_ROWS = 64


@dataclass(frozen=True)
class Labelled:
    """One labelled set as the study uses it: files for the fine-tuning loop, dev rows for scoring."""

    name: str
    train: Path  # the shared train.csv (the loop reads its first `train_rows` rows)
    trainer_dev: Path  # OUT/data/<name>-dev-head.csv: the loop's single end-of-run evaluation
    dev_texts: list[str]
    dev_labels: list[int]


def check_data(data_dir: Path) -> None:
    """Raise a one-line LlmlabError naming the first shared-data file the study needs and cannot find."""
    needed = [f"{c}/train.txt" for c in CORPORA] + [
        f"{s}/{p}.csv" for s in LABELLED for p in ("train", "dev")
    ]
    for name in needed:
        if not (data_dir / name).is_file():
            raise LlmlabError(f"{data_dir / name}: not found (point --data at the shared data folder)")


def read_labelled(path: Path, rows: int | None) -> tuple[list[str], list[int]]:
    """(texts, class ids) of the first `rows` rows of a `text,label` CSV (all when None)."""
    pairs = [(r["text"], int(r["label"])) for _, r in itertools.islice(csv_rows(path), rows)]
    return [t for t, _ in pairs], [y for _, y in pairs]


def corpus_lines(data_dir: Path, lines_per_source: int | None) -> tuple[list[str], list[str]]:
    """(novels and poetry lines, labelled train texts): the first `lines_per_source` lines (None: all) of each
    source; the labels are not read."""
    books: list[str] = []
    for corpus in CORPORA:
        books += itertools.islice(read_lines(data_dir / corpus / "train.txt"), lines_per_source)
    reviews: list[str] = []
    for name in LABELLED:
        reviews += read_labelled(data_dir / name / "train.csv", lines_per_source)[0]
    return books, reviews


def write_texts(out: Path, texts: dict[str, list[str]]) -> None:
    """OUT/data/<name>.txt for each name, one text per line; a file that exists is kept (resumed runs)."""
    out.mkdir(parents=True, exist_ok=True)
    for name, lines in texts.items():
        if not (out / f"{name}.txt").is_file():
            atomic_write_text(out / f"{name}.txt", "".join(line + "\n" for line in lines))


def labelled_set(data_dir: Path, out: Path, name: str, dev_rows: int | None) -> Labelled:
    """The labelled set `name`: its dev rows, and the trainer's dev slice written to OUT/data."""
    texts, labels = read_labelled(data_dir / name / "dev.csv", dev_rows)
    head = out / f"{name}-dev-head.csv"
    if not head.is_file():
        with atomic_open(head) as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["text", "label"])
            writer.writerows(zip(texts[:TRAINER_DEV_ROWS], labels[:TRAINER_DEV_ROWS], strict=True))
    return Labelled(name, data_dir / name / "train.csv", head, texts, labels)
