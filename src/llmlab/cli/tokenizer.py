"""`llmlab tokenizer train|count|encode|decode|inspect`: the tokenizer commands (Python: `llmlab.tokenizer`)."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import IO, Annotated

import typer

from llmlab.errors import LlmlabError
from llmlab.io import atomic_open, decode_lines, read_lines
from llmlab.validate import check_input, check_output, undo_on_failure

app = typer.Typer(
    help="Train, apply and inspect tokenizers (WordPiece, byte-level BPE, Unigram).", no_args_is_help=True
)


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


def _split_specials(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [t for v in values for t in v.split(",") if t]


_CORPUS_HELP = "UTF-8 text: files, folders, globs; .gz, .bz2 and .zst are decompressed while read."
_MEMORY_HELP = (
    "Memory for the word table before it spills sorted runs to disk (e.g. 512M, 2G; default: 1/4 of RAM)."
)


@app.command("train")
def tokenizer_train(
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the tokenizer.json.")],
    corpus: Annotated[list[Path] | None, typer.Argument(help=_CORPUS_HELP)] = None,
    model: Annotated[ModelName, typer.Option(help="The algorithm.")] = ModelName.bpe,
    vocab_size: Annotated[
        int, typer.Option(min=1, max=10_000_000, help="Final vocabulary size, special tokens included.")
    ] = 8000,
    min_frequency: Annotated[
        int, typer.Option(min=0, max=2**62, help="Minimum pair count to merge (wordpiece, bpe).")
    ] = 0,
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
        float, typer.Option(min=0, max=1, help="Unigram: share of characters to cover.")
    ] = 0.9995,
    byte_fallback: Annotated[
        bool, typer.Option(help="Unigram: unknown characters become UTF-8 bytes.")
    ] = False,
    from_counts: Annotated[
        list[Path] | None,
        typer.Option(
            help="Train from count files (`tokenizer count`; repeat to sum several) instead of text."
        ),
    ] = None,
    max_memory: Annotated[str | None, typer.Option(help=_MEMORY_HELP)] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, max=1024, help="Processes counting words (default: all cores).")
    ] = None,
    sample: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=2**62,
            help="Unigram: train on a random sample of about this many word occurrences (reported).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1, help="Seed of --sample.")] = 0,
    errors: Annotated[
        Errors, typer.Option(help="Invalid UTF-8: 'strict' stops, 'replace' goes on.")
    ] = Errors.strict,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Train a tokenizer on text (or on count files) and write it as a Hugging Face tokenizer.json."""
    from llmlab.progress import progress_bar
    from llmlab.tokenizer.train import train_from_counts

    check_output(output, [*(corpus or []), *(from_counts or [])])
    options: dict = {}
    if model is ModelName.wordpiece:
        options["criterion"] = criterion
    if model is ModelName.unigram:
        options.update(character_coverage=character_coverage, byte_fallback=byte_fallback)
    counts, source = _word_table(model.value, corpus, from_counts, errors, workers, max_memory, quiet)
    with progress_bar(f"training {model.value}", enabled=not quiet) as progress:
        tok = train_from_counts(
            model.value,
            counts,
            vocab_size,
            min_frequency,
            _split_specials(special_tokens),
            progress=progress,
            source=source,
            sample=sample,
            seed=seed,
            **options,
        )
    tok.save(output)
    print(f"{output}: {model.value} tokenizer, vocab {tok.vocab_size}, fingerprint {tok.fingerprint[:16]}")


def _word_table(model, corpus, from_counts, errors, workers, max_memory, quiet):
    """The counted words of `corpus` (in bounded memory) or of the count files `from_counts`, and their name."""
    from llmlab.progress import progress_bar
    from llmlab.tokenizer.corpus import read_corpus
    from llmlab.tokenizer.countfile import pipeline_fingerprint
    from llmlab.tokenizer.counting import count_words, parse_size, pipeline_of
    from llmlab.tokenizer.train import model_pipeline
    from llmlab.tokenizer.word_table import load_counts

    if bool(corpus) == bool(from_counts):
        raise LlmlabError(
            "tokenizer train: give either CORPUS files or --from-counts files (not both, not neither)"
        )
    normalizer, pretokenizer = model_pipeline(model)
    if from_counts:
        expected = pipeline_fingerprint(pipeline_of(normalizer, pretokenizer))
        return load_counts(from_counts, expected), ", ".join(map(str, from_counts))
    memory = parse_size(max_memory) if max_memory else None
    with progress_bar("counting words (characters)", enabled=not quiet) as progress:
        lines = read_corpus(corpus, errors.value)
        counts = count_words(lines, normalizer, pretokenizer, workers, memory, progress)
    return counts, ", ".join(map(str, corpus))


@app.command("count")
def tokenizer_count(
    corpus: Annotated[list[Path], typer.Argument(help=_CORPUS_HELP)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the count file.")],
    model: Annotated[ModelName, typer.Option(help="Whose normalizer and pre-tokenizer make the words.")] = (
        ModelName.bpe
    ),
    max_memory: Annotated[str | None, typer.Option(help=_MEMORY_HELP)] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1, max=1024, help="Processes counting words, or Dask workers with --scheduler local."
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Count on Dask (extra 'dask'), a task per file: 'local' starts a local cluster, or a scheduler "
            "address such as tcp://host:8786."
        ),
    ] = None,
    errors: Annotated[
        Errors, typer.Option(help="Invalid UTF-8: 'strict' stops, 'replace' goes on.")
    ] = Errors.strict,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Count a corpus's words exactly, in bounded memory, into a count file for `train --from-counts`."""
    from llmlab.tokenizer.countfile import pipeline_fingerprint
    from llmlab.tokenizer.counting import pipeline_of
    from llmlab.tokenizer.train import model_pipeline

    check_output(output, corpus)
    with undo_on_failure(output):
        words = _count(corpus, output, model, max_memory, workers, scheduler, errors, quiet)
    fingerprint = pipeline_fingerprint(pipeline_of(*model_pipeline(model.value)))[:16]
    print(f"{output}: {words:,} distinct words, {model.value} pipeline (fingerprint {fingerprint})")


def _count(corpus, output, model, max_memory, workers, scheduler, errors, quiet) -> int:
    from llmlab.progress import progress_bar
    from llmlab.tokenizer.corpus import read_corpus
    from llmlab.tokenizer.counting import count_to_file, parse_size, pipeline_of
    from llmlab.tokenizer.train import model_pipeline

    normalizer, pretokenizer = model_pipeline(model.value)
    pipeline = pipeline_of(normalizer, pretokenizer)
    memory = parse_size(max_memory) if max_memory else None
    if scheduler:
        from llmlab.tokenizer.distributed_count import count_on_dask, dask_client

        with (
            dask_client(scheduler, workers) as client,
            progress_bar("counting files on Dask", not quiet) as bar,
        ):
            words = count_on_dask(corpus, output, pipeline, client, errors.value, memory, bar)
    else:
        with progress_bar("counting words (characters)", enabled=not quiet) as bar:
            lines = read_corpus(corpus, errors.value)
            words = count_to_file(lines, output, normalizer, pretokenizer, workers, memory, bar)
    return words


@contextmanager
def _output(path: Path | None) -> Iterator[IO[str]]:
    if path is None:
        yield sys.stdout
        return
    with atomic_open(path, "w") as f:
        yield f


def _input_lines(path: Path | None, errors: Errors) -> Iterable[str]:
    """The lines of `path`, or of stdin read as bytes: invalid UTF-8 is an error there too (or replaced)."""
    if path is None:
        return decode_lines(sys.stdin.buffer, "<stdin>", errors.value)
    return read_lines(path, errors.value)


_ERRORS_HELP = "Invalid UTF-8 in the input: 'strict' stops, 'replace' puts U+FFFD in its place and goes on."


@app.command("encode")
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
    errors: Annotated[Errors, typer.Option(help=_ERRORS_HELP)] = Errors.strict,
) -> None:
    """Encode text: one input line gives one output line of space-separated ids (or tokens, or JSON).

    Lines of any length: a very long line is encoded in chunks cut at pre-tokenizer boundaries, so memory
    stays bounded (a 50 MB line in under 1 GB) and the output is the same as encoding it whole.
    """
    from llmlab.tokenizer.long_lines import CHUNK_CHARS, encode_pieces, write_pieces
    from llmlab.tokenizer.pipeline import Tokenizer

    check_input(tokenizer, "file", "tokenizer")
    if output is not None:
        check_output(output, [tokenizer, input])
    tok = Tokenizer.load(tokenizer)
    with _output(output) as out:
        lines = iter(_input_lines(input, errors))
        for batch in iter(lambda: list(itertools.islice(lines, 1000)), []):
            short = [line for line in batch if len(line) <= 2 * CHUNK_CHARS]
            encodings = iter(tok.encode_batch(short, add_special_tokens=special_tokens))
            for line in batch:
                if len(line) <= 2 * CHUNK_CHARS:
                    enc = next(encodings)
                    write_pieces(out, [(enc.ids, enc.tokens, enc.offsets)], format.value)
                else:
                    write_pieces(out, encode_pieces(tok, line, special_tokens), format.value)


@app.command("decode")
def tokenizer_decode(
    tokenizer: Annotated[Path, typer.Option(help="A tokenizer.json (llmlab or Hugging Face).")],
    input: Annotated[
        Path | None, typer.Option(help="File of space-separated ids, one sequence per line.")
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Output file (default: stdout).")] = None,
    skip_special_tokens: Annotated[bool, typer.Option(help="Leave special tokens out of the text.")] = True,
    errors: Annotated[Errors, typer.Option(help=_ERRORS_HELP)] = Errors.strict,
) -> None:
    """Decode ids back to text: the inverse of `encode --format ids`."""
    from llmlab.tokenizer.pipeline import Tokenizer

    check_input(tokenizer, "file", "tokenizer")
    if output is not None:
        check_output(output, [tokenizer, input])
    tok = Tokenizer.load(tokenizer)
    where = str(input) if input else "<stdin>"
    with _output(output) as out:
        for number, line in enumerate(_input_lines(input, errors), start=1):
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


@app.command("inspect")
def tokenizer_inspect(
    tokenizer: Annotated[Path, typer.Argument(help="A tokenizer.json (llmlab or Hugging Face).")],
    sample: Annotated[
        str, typer.Option(help="Text to segment as an example.")
    ] = "Tokenizers split unbelievably long words; 分词器也能处理中文。",
) -> None:
    """Show a tokenizer's model type, vocabulary size, special tokens, fingerprint and a sample segmentation."""
    from llmlab.tokenizer.pipeline import Tokenizer

    check_input(tokenizer, "file", "tokenizer")
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


@app.command("convert")
def tokenizer_convert(
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the tokenizer.json.")],
    from_spm: Annotated[
        Path | None, typer.Option("--from-spm", help="A SentencePiece .model file (unigram or bpe).")
    ] = None,
    from_tiktoken: Annotated[
        Path | None,
        typer.Option("--from-tiktoken", help="A tiktoken rank file (base64 token, rank per line)."),
    ] = None,
    pattern: Annotated[
        str | None,
        typer.Option(
            help="With --from-tiktoken: gpt2, r50k_base, p50k_base, cl100k_base, o200k_base or a regex."
        ),
    ] = None,
    from_gpt2: Annotated[
        tuple[Path, Path] | None,
        typer.Option("--from-gpt2", help="GPT-2's encoder.json and vocab.bpe (two paths)."),
    ] = None,
) -> None:
    """Convert a SentencePiece model, a tiktoken rank file or GPT-2's files into a tokenizer.json."""
    from llmlab.tokenizer import convert

    given = [x for x in (from_spm, from_tiktoken, from_gpt2) if x is not None]
    if len(given) != 1:
        raise LlmlabError("tokenizer convert: give exactly one of --from-spm, --from-tiktoken, --from-gpt2")
    if (from_tiktoken is None) != (pattern is None):
        raise LlmlabError("tokenizer convert: --pattern goes with --from-tiktoken (and it needs one)")
    inputs = [from_spm, from_tiktoken, *(from_gpt2 or ())]
    for path in inputs:
        if path is not None:
            check_input(path, "file", "tokenizer")
    check_output(output, inputs)
    if from_spm is not None:
        tok = convert.from_spm(from_spm)
    elif from_tiktoken is not None:
        tok = convert.from_tiktoken(from_tiktoken, pattern)
    else:
        tok = convert.from_gpt2(*from_gpt2)
    tok.save(output)
    print(f"{output}: {tok.model_type} tokenizer, vocab {tok.vocab_size}, fingerprint {tok.fingerprint[:16]}")
