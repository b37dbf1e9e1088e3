"""The `llmlab` command line: one typed function per subcommand, its docstring the `--help`.

Results go to stdout, progress and logs to stderr. Any `LlmlabError` becomes one line on stderr and exit
status 2, without a traceback.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import IO, Annotated

import typer

from llmlab.abtest import commands as abtest_commands
from llmlab.abtest import serve_command
from llmlab.errors import LlmlabError
from llmlab.evaluation import commands as evaluation_commands
from llmlab.finetune import commands as finetune_commands
from llmlab.io import atomic_open, read_lines

app = typer.Typer(
    help="llmlab: the building blocks of large language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
tokenizer_app = typer.Typer(
    help="Train, apply and inspect tokenizers (WordPiece, byte-level BPE, Unigram).", no_args_is_help=True
)
app.add_typer(tokenizer_app, name="tokenizer")
study_app = typer.Typer(
    help="Studies that show why the building blocks behave as they do.", no_args_is_help=True
)
app.add_typer(study_app, name="study")
finetune_commands.register(app)
evaluation_commands.register(app)
abtest_commands.register(app)
serve_command.register(app)


class ModelName(str, Enum):
    wordpiece = "wordpiece"
    bpe = "bpe"
    unigram = "unigram"


class EncodeFormat(str, Enum):
    ids = "ids"
    tokens = "tokens"
    jsonl = "jsonl"


class Errors(str, Enum):
    strict = "strict"
    replace = "replace"


def _require_folder(path: Path) -> None:
    if not path.parent.is_dir():
        raise LlmlabError(f"{path}: output folder {path.parent} does not exist")


def _split_specials(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [t for v in values for t in v.split(",") if t]


@tokenizer_app.command("train")
def tokenizer_train(
    corpus: Annotated[
        list[Path], typer.Argument(help="UTF-8 text files, one sentence or paragraph per line.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the tokenizer.json.")],
    model: Annotated[ModelName, typer.Option(help="The algorithm.")] = ModelName.bpe,
    vocab_size: Annotated[int, typer.Option(help="Final vocabulary size, special tokens included.")] = 8000,
    min_frequency: Annotated[int, typer.Option(help="Minimum pair count to merge (wordpiece, bpe).")] = 0,
    special_tokens: Annotated[
        list[str] | None,
        typer.Option(
            help="Special tokens (repeat the option or separate by commas); default: the family's usual set."
        ),
    ] = None,
    criterion: Annotated[
        str,
        typer.Option(help="WordPiece merge score: 'frequency' (as HF) or 'likelihood' (original WordPiece)."),
    ] = "frequency",
    character_coverage: Annotated[
        float, typer.Option(help="Unigram: share of characters to cover.")
    ] = 0.9995,
    byte_fallback: Annotated[
        bool, typer.Option(help="Unigram: unknown characters become UTF-8 bytes.")
    ] = False,
    errors: Annotated[
        Errors, typer.Option(help="Invalid UTF-8: 'strict' stops, 'replace' goes on.")
    ] = Errors.strict,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Train a tokenizer on text files and write it as a Hugging Face tokenizer.json."""
    from llmlab.progress import progress_bar
    from llmlab.tokenizer.train import train_tokenizer

    _require_folder(output)
    options: dict = {}
    if model is ModelName.wordpiece:
        options["criterion"] = criterion
    if model is ModelName.unigram:
        options.update(character_coverage=character_coverage, byte_fallback=byte_fallback)
    lines = itertools.chain.from_iterable(read_lines(p, errors.value) for p in corpus)
    with progress_bar(f"training {model.value}", enabled=not quiet) as progress:
        tok = train_tokenizer(
            model.value,
            lines,
            vocab_size,
            min_frequency,
            _split_specials(special_tokens),
            progress=progress,
            source=", ".join(map(str, corpus)),
            **options,
        )
    tok.save(output)
    print(f"{output}: {model.value} tokenizer, vocab {tok.vocab_size}, fingerprint {tok.fingerprint[:16]}")


@contextmanager
def _output(path: Path | None) -> Iterator[IO[str]]:
    if path is None:
        yield sys.stdout
        return
    with atomic_open(path, "w") as f:
        yield f


def _input_lines(path: Path | None) -> Iterable[str]:
    if path is None:
        return (line.rstrip("\r\n") for line in sys.stdin)
    return read_lines(path)


@tokenizer_app.command("encode")
def tokenizer_encode(
    tokenizer: Annotated[Path, typer.Option(help="A tokenizer.json (llmlab or Hugging Face).")],
    input: Annotated[
        Path | None, typer.Option(help="Text file, one input per line (default: stdin).")
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Output file (default: stdout).")] = None,
    format: Annotated[
        EncodeFormat, typer.Option(help="ids, tokens, or jsonl (ids, tokens, offsets).")
    ] = EncodeFormat.ids,
    special_tokens: Annotated[bool, typer.Option(help="Add the template's special tokens.")] = True,
) -> None:
    """Encode text: one input line gives one output line of space-separated ids (or tokens, or JSON)."""
    from llmlab.tokenizer.pipeline import Tokenizer

    tok = Tokenizer.load(tokenizer)
    with _output(output) as out:
        lines = iter(_input_lines(input))
        for batch in iter(lambda: list(itertools.islice(lines, 1000)), []):
            for enc in tok.encode_batch(batch, add_special_tokens=special_tokens):
                out.write(_format_encoding(enc, format) + "\n")


def _format_encoding(enc, format: EncodeFormat) -> str:
    if format is EncodeFormat.ids:
        return " ".join(map(str, enc.ids))
    if format is EncodeFormat.tokens:
        return " ".join(enc.tokens)
    return json.dumps({"ids": enc.ids, "tokens": enc.tokens, "offsets": enc.offsets}, ensure_ascii=False)


@tokenizer_app.command("decode")
def tokenizer_decode(
    tokenizer: Annotated[Path, typer.Option(help="A tokenizer.json (llmlab or Hugging Face).")],
    input: Annotated[
        Path | None, typer.Option(help="File of space-separated ids, one sequence per line.")
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Output file (default: stdout).")] = None,
    skip_special_tokens: Annotated[bool, typer.Option(help="Leave special tokens out of the text.")] = True,
) -> None:
    """Decode ids back to text: the inverse of `encode --format ids`."""
    from llmlab.tokenizer.pipeline import Tokenizer

    tok = Tokenizer.load(tokenizer)
    where = str(input) if input else "<stdin>"
    with _output(output) as out:
        for number, line in enumerate(_input_lines(input), start=1):
            ids = _parse_ids(line, tok.vocab_size, f"{where}:{number}")
            out.write(tok.decode(ids, skip_special_tokens=skip_special_tokens) + "\n")


def _parse_ids(line: str, vocab_size: int, where: str) -> list[int]:
    try:
        ids = [int(x) for x in line.split()]
    except ValueError:
        raise LlmlabError(f"{where}: expected space-separated integer ids, got {line[:40]!r}") from None
    bad = [i for i in ids if not 0 <= i < vocab_size]
    if bad:
        raise LlmlabError(f"{where}: id {bad[0]} is outside the vocabulary (size {vocab_size})")
    return ids


@tokenizer_app.command("inspect")
def tokenizer_inspect(
    tokenizer: Annotated[Path, typer.Argument(help="A tokenizer.json (llmlab or Hugging Face).")],
    sample: Annotated[
        str, typer.Option(help="Text to segment as an example.")
    ] = "Tokenizers split unbelievably long words; 分词器也能处理中文。",
) -> None:
    """Show a tokenizer's model type, vocabulary size, special tokens, fingerprint and a sample segmentation."""
    from llmlab.tokenizer.pipeline import Tokenizer

    tok = Tokenizer.load(tokenizer)
    specials = [t.content for t in tok.added_tokens if t.special]
    enc = tok.encode(sample)
    print(f"file:           {tokenizer}")
    print(f"model:          {tok.model_type}")
    print(f"vocab size:     {tok.vocab_size}")
    print(f"special tokens: {' '.join(specials) or '(none)'}")
    print(f"fingerprint:    {tok.fingerprint}")
    print(f"sample:         {sample}")
    print(f"tokens:         {' | '.join(enc.tokens)}")
    print(f"ids:            {' '.join(map(str, enc.ids))}")


@app.command("pretrain")
def pretrain(
    train: Annotated[list[Path], typer.Option(help="Training text file (repeat for several).")],
    valid: Annotated[list[Path], typer.Option(help="Validation text file (repeat for several).")],
    tokenizer: Annotated[Path, typer.Option(help="A tokenizer.json saved by llmlab.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Run folder: checkpoints, metrics.jsonl.")],
    positional: Annotated[
        str, typer.Option(help="none, sinusoidal, learned, relative, t5, rope, alibi.")
    ] = "rope",
    steps: Annotated[int, typer.Option(help="Optimizer steps.")] = 1000,
    context: Annotated[int, typer.Option(help="Tokens per training window.")] = 128,
    batch_size: Annotated[int, typer.Option(help="Windows per step.")] = 32,
    lr: Annotated[float, typer.Option(help="Peak learning rate (warmup, then cosine decay).")] = 1e-3,
    warmup: Annotated[int, typer.Option(help="Warmup steps.")] = 100,
    d_model: Annotated[int, typer.Option(help="Model width.")] = 256,
    n_layers: Annotated[int, typer.Option(help="Transformer blocks.")] = 4,
    n_heads: Annotated[int, typer.Option(help="Attention heads.")] = 4,
    eval_every: Annotated[int, typer.Option(help="Steps between validation perplexities.")] = 100,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints.")] = 500,
    seed: Annotated[int, typer.Option(help="Seed for weights and data order.")] = 0,
    resume: Annotated[bool, typer.Option(help="Continue from the latest checkpoint in --output.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Pretrain a causal LM on text files with a saved llmlab tokenizer; resumes exactly with --resume."""
    from llmlab.model.pretrain import PretrainConfig
    from llmlab.model.pretrain import pretrain as run_pretraining

    model = {"positional": positional, "d_model": d_model, "n_layers": n_layers, "n_heads": n_heads}
    config = PretrainConfig(
        train, valid, tokenizer, output, model=model, context_length=context, batch_size=batch_size, steps=steps,
        lr=lr, warmup_steps=min(warmup, steps), eval_every=eval_every, checkpoint_every=checkpoint_every,
        seed=seed, resume=resume,
    )  # fmt: skip
    print(run_pretraining(config, progress=not quiet))


@study_app.command("positions")
def study_positions(
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Folder for positions.json and report.html.")
    ],
    quick: Annotated[bool, typer.Option(help="Small sizes (minutes) instead of the full study.")] = False,
    data: Annotated[
        Path | None, typer.Option(help="The shared data folder (default: ../shared/data).")
    ] = None,
    threads: Annotated[int, typer.Option(help="Torch threads.")] = 1,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Positional encodings side by side: permutation, word order, length extrapolation, and pictures."""
    from llmlab.model.study import run_position_study
    from llmlab.model.study_report import format_tables

    results = run_position_study(output, data, quick=quick, progress=not quiet, threads=threads)
    print(format_tables(results))
    print(f"report: {output / 'report.html'}")


@app.command("convert")
def convert(
    out: Annotated[Path, typer.Option("-o", "--out", help="Output folder (created; its parent must exist).")],
    from_hf: Annotated[
        Path | None, typer.Option("--from-hf", help="HF BERT or GPT-2 folder to import.")
    ] = None,
    to_hf: Annotated[Path | None, typer.Option("--to-hf", help="llmlab checkpoint folder to export.")] = None,
) -> None:
    """Convert a checkpoint folder between Hugging Face (BERT, GPT-2) and llmlab formats, tokenizer included."""
    from llmlab.model.hf_export import convert as convert_checkpoint

    if (from_hf is None) == (to_hf is None):
        raise LlmlabError("convert: give exactly one of --from-hf HF_DIR and --to-hf LLMLAB_DIR")
    src, direction = (from_hf, "from-hf") if from_hf is not None else (to_hf, "to-hf")
    print(convert_checkpoint(src, out, direction))


@app.command("demo")
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the run's artefacts and report.html.")] = Path(
        "runs/demo"
    ),
    quiet: Annotated[bool, typer.Option(help="No progress display.")] = False,
) -> None:
    """Run the end-to-end demo offline on the embedded corpus and write an HTML report."""
    from llmlab.demo import run_demo

    report = run_demo(out, progress=not quiet)
    print(f"report: {report}")


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run the app, turning user errors into one line on stderr and exit status 2."""
    try:
        app(args=argv, prog_name="llmlab")  # standalone: usage errors print themselves and raise SystemExit
    except LlmlabError as e:
        print(f"llmlab: error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 0
    return 0
