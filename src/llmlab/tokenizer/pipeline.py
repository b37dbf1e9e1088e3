"""The tokenizer pipeline: normalizer → pre-tokenizer → model → post-processor, and the decoder back.

Follows Hugging Face `tokenizers` (tokenizers/src/tokenizer/mod.rs, added_vocabulary.rs, utils/truncation.rs,
utils/padding.rs) and is tested against it id for id, offset for offset, on real data:
1. Added tokens are split off, each remaining piece normalized, pre-tokenized into words, and each word split
   by the model (`encoder.py`; offsets are character spans into the original text, as HF's Python binding
   gives them).
2. Truncation (room left for the special tokens), post-processing (special tokens, type ids), padding
   (`truncation.py`, `postprocess.py`). Word ids and the input each token comes from follow the tokens
   (`Encoding.word_ids`, `char_to_token`, ...; `encoding.py`).
3. Decoding: ids back to tokens (special ones skipped on request), then the decoder.
The standard pipelines run on the compiled core (`core.py`, sources in `_core/`) when it is built: the same
results (tests run both paths), the Python code here being their reference and fallback. The core does not
track words yet: `track_words = True` sends encoding to the Python path, which does. For a lower peak memory
the core is built at first use (once a tokenizer.json just parsed is freed), and the Python path's lookups
(id -> token, its encoder; BPE's merge ranks) only when something asks for them.
Deviation: `max_length` below the number of special tokens is an error (HF's unsigned subtraction wraps
around there and nothing is truncated).

`AddedToken` (added_tokens.py), `Encoding` (encoding.py), `Truncation` and `Padding` (truncation.py) are
re-exported here.
"""

from __future__ import annotations

import functools
import gc
import os
from array import array
from collections.abc import Iterable

from llmlab.errors import LlmlabError
from llmlab.io import atomic_write_json, fingerprint
from llmlab.tokenizer import core
from llmlab.tokenizer.added_tokens import AddedToken, AddedTokenMatcher, AddedVocabulary, next_added_id
from llmlab.tokenizer.encoder import SequenceEncoder
from llmlab.tokenizer.encoding import Encoding, empty, merge, merge_all
from llmlab.tokenizer.normalize import Normalizer
from llmlab.tokenizer.postprocess import PostProcessor
from llmlab.tokenizer.pretokenize import PreTokenizer
from llmlab.tokenizer.truncation import Padding, Truncation, pad_encodings, truncate_pair

__all__ = ["AddedToken", "Encoding", "Padding", "Tokenizer", "Truncation", "check_fingerprint"]
_UNBUILT = object()  # Tokenizer._core before its first use
_DERIVED = ("_id_to_token", "_encoder_matchers", "_encoder")  # made from the stages on first use


class Tokenizer:
    """A full tokenizer: text → `Encoding` (ids, tokens, offsets, masks) and ids → text."""

    def __init__(
        self,
        model,
        normalizer: Normalizer | None = None,
        pre_tokenizer: PreTokenizer | None = None,
        post_processor: PostProcessor | None = None,
        decoder=None,
        added_tokens: Iterable[AddedToken] = (),
        truncation: Truncation | None = None,
        padding: Padding | None = None,
    ):
        """Assemble the pipeline.

        Args:
            model: a `WordPiece`, `BPE` or `Unigram` model (anything with `tokenize`, `vocab`, `to_hf`).
            normalizer, pre_tokenizer, post_processor, decoder: the other stages (None: skip the stage).
            added_tokens: tokens matched before the model runs (special tokens such as [CLS]).
            truncation, padding: runtime settings (see `enable_truncation`, `enable_padding`).
        """
        self._model, self._normalizer, self._pre_tokenizer = model, normalizer, pre_tokenizer
        self._post_processor, self._decoder = post_processor, decoder
        self._truncation, self._padding = truncation, padding
        self._added = AddedVocabulary(added_tokens)
        self._refresh()

    def __repr__(self) -> str:
        return f"Tokenizer({self.model_type}, vocab_size={self.vocab_size}, added_tokens={len(self.added_tokens)})"

    # The stages the encoder and its caches depend on: assigning a new one rebuilds them. Treat stages as
    # immutable (change a setting of one in place and the caches keep the old results).
    model = property(lambda self: self._model, lambda self, stage: self._set("_model", stage))
    normalizer = property(lambda self: self._normalizer, lambda self, stage: self._set("_normalizer", stage))
    pre_tokenizer = property(
        lambda self: self._pre_tokenizer, lambda self, stage: self._set("_pre_tokenizer", stage)
    )
    post_processor = property(
        lambda self: self._post_processor, lambda self, stage: self._set("_post_processor", stage)
    )
    decoder = property(lambda self: self._decoder, lambda self, stage: self._set("_decoder", stage))

    def _set(self, attribute: str, stage) -> None:
        setattr(self, attribute, stage)
        self._refresh()

    @property
    def truncation(self) -> Truncation | None:
        return self._truncation

    @truncation.setter
    def truncation(self, value: Truncation | None) -> None:
        self._truncation = value
        self._push_runtime()

    @property
    def padding(self) -> Padding | None:
        return self._padding

    @padding.setter
    def padding(self, value: Padding | None) -> None:
        self._padding = value
        self._push_runtime()

    @property
    def engine(self) -> str:
        """ "core" when encoding runs on the compiled core, "python" otherwise (see `core.py`)."""
        return "python" if self._compiled() is None else "core"

    def _push_runtime(self) -> None:
        if self._core is not None and self._core is not _UNBUILT:
            truncation, padding = core.runtime(self._truncation, self._padding)
            self._core.set_truncation(truncation)
            self._core.set_padding(padding)

    def __getstate__(self) -> dict:
        """Stages and settings; the lookups, the Python encoder and the compiled core are rebuilt from them."""
        return {k: v for k, v in self.__dict__.items() if k not in (*_DERIVED, "_core")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._build_core()

    @property
    def model_type(self) -> str:
        """ "wordpiece", "bpe" or "unigram"."""
        return type(self.model).__name__.lower()

    # ---- added tokens and vocabulary -------------------------------------------------------------------

    @property
    def added_tokens(self) -> list[AddedToken]:
        """The added tokens, in the order they were added."""
        return self._added.tokens

    def _refresh(self) -> None:
        """Drop the lookups, the encoder and the core after a stage or the added tokens changed."""
        self._specials = {t.content for t in self.added_tokens if t.special}
        self._added_ids = self._added.ids()
        for name in _DERIVED:
            self.__dict__.pop(name, None)
        self._build_core()

    # Made on first use (functools.cached_property, dropped by `_refresh`): a tokenizer running on the compiled
    # core needs none of them for encoding and decoding, and they cost megabytes for a large vocabulary.

    @functools.cached_property
    def _id_to_token(self) -> dict[int, str]:
        """id -> token, the model's then the added tokens'."""
        norm = self.normalizer.normalize if self.normalizer else str
        # as HF: a normalized added token reads back in its normalized form (and is then not "special" by name)
        return {i: t for t, i in self.model.vocab.items()} | self._added.read_back(norm)

    @functools.cached_property
    def _encoder_matchers(self) -> tuple[AddedTokenMatcher, AddedTokenMatcher]:
        """The added tokens matched in the raw and in the normalized text."""
        norm = self.normalizer.normalize if self.normalizer else str
        added = self._added
        if self.encode_special_tokens:
            added = AddedVocabulary([t for t in added.tokens if not t.special])
        return added.matchers(norm)

    @functools.cached_property
    def _encoder(self) -> SequenceEncoder:
        """The Python path's encoder."""
        raw, normalized = self._encoder_matchers
        return SequenceEncoder(
            self.model, self.normalizer, self.pre_tokenizer, raw, normalized, self._id_to_token
        )

    def _build_core(self) -> None:
        """Decide now whether the core may run (LLMLAB_PURE_PYTHON, settings); build it at first use, when a
        tokenizer.json just parsed has been freed (a lower peak RSS)."""
        python_only = self.encode_special_tokens or self.track_words or not core.available()
        self._core = None if python_only else _UNBUILT

    def _compiled(self):
        """The compiled core (built at first use), or None where this tokenizer runs in Python."""
        if self._core is _UNBUILT:
            self._core = core.build_core(self)
            self._push_runtime()
        return self._core

    @property
    def encode_special_tokens(self) -> bool:
        """True: special tokens in the text are not split off but encoded as text (HF's setting of that name)."""
        return self.__dict__.get("_encode_special_tokens", False)

    @encode_special_tokens.setter
    def encode_special_tokens(self, value: bool) -> None:
        self._encode_special_tokens = bool(value)
        self._refresh()

    @property
    def track_words(self) -> bool:
        """True: every encoding carries word ids (`Encoding.word_ids`, `char_to_word`, `word_to_tokens`, ...).

        The Python path always tracks them; the compiled core does not yet, so True encodes on the Python path.
        """
        return self.__dict__.get("_track_words", False)

    @track_words.setter
    def track_words(self, value: bool) -> None:
        self._track_words = bool(value)
        self._refresh()

    def add_special_tokens(self, tokens: list[str]) -> int:
        """Add special tokens (matched in the raw text, skipped when decoding), as HF's `add_special_tokens`.

        A token already in the vocabulary keeps its id; a new one gets the next free id.

        Returns:
            How many were added (tokens already added as special tokens do not count).
        """
        added = 0
        for content in tokens:
            id_ = self._added_ids.get(content, self.model.token_to_id(content))
            added += self._added.add(
                AddedToken(self._next_id() if id_ is None else id_, content, special=True)
            )
            self._added_ids = self._added.ids()
        self._refresh()
        return added

    def _next_id(self) -> int:
        return next_added_id(len(self.model.vocab), [t.id for t in self.added_tokens])

    def token_to_id(self, token: str) -> int | None:
        """The id of `token` (added tokens first, then the model), or None."""
        id_ = self._added_ids.get(token)
        return self.model.token_to_id(token) if id_ is None else id_

    def id_to_token(self, id: int) -> str | None:
        """The token of `id` (added tokens first, then the model), or None."""
        return self._id_to_token.get(id)

    def get_vocab(self) -> dict[str, int]:
        """token -> id, the model's vocabulary and the added tokens."""
        return {**self.model.vocab, **{t.content: t.id for t in self.added_tokens}}

    @property
    def vocab_size(self) -> int:
        """Number of distinct tokens, added tokens included (HF's `get_vocab_size(True)`)."""
        return len(self.get_vocab())

    # ---- encoding --------------------------------------------------------------------------------------

    def encode(
        self,
        text: str | list[str],
        pair: str | list[str] | None = None,
        add_special_tokens: bool = True,
        is_pretokenized: bool = False,
    ) -> Encoding:
        """Tokenize one text (or a pair of texts) into an `Encoding`.

        Args:
            text: the (first) text.
            pair: the second text of a pair (e.g. question and context), or None.
            add_special_tokens: let the post-processor add its special tokens ([CLS], [SEP], ...).
            is_pretokenized: `text` (and `pair`) are lists of words, each encoded on its own (through the
                whole pipeline, as HF does); offsets are then within each word.

        Returns:
            The encoding, truncated and padded as configured; `overflowing` holds the cut-off windows.

        Raises:
            LlmlabError: the truncation settings cannot be met (stride too large, sequence too short).
        """
        if is_pretokenized:
            return self._encode_words(text, pair, add_special_tokens)
        compiled = self._core  # (read here: calling _compiled() was 5% of the cost of encoding a short line)
        if compiled is _UNBUILT:
            compiled = self._compiled()
        if compiled is not None:
            enc = compiled.encode(text, pair, add_special_tokens)
            if enc is not None:
                return enc
        text, pair = _as_text(text), None if pair is None else _as_text(pair)
        enc = self._post_process(
            self._encoder.encode(text, 0),
            None if pair is None else self._encoder.encode(pair, 1),
            add_special_tokens,
        )
        return pad_encodings([enc], self.padding)[0] if self.padding else enc

    def encode_batch(
        self,
        inputs: list[str] | list[tuple[str, str]],
        add_special_tokens: bool = True,
        num_threads: int | None = None,
    ) -> list[Encoding]:
        """Encode many texts or (text, pair) tuples; batch-longest padding pads to the longest of the batch.

        `num_threads`: threads of the compiled core (default: LLMLAB_NUM_THREADS, else every CPU).
        """
        # A batch allocates thousands of small lists (on the core too: each Encoding's ids) that all survive
        # until it is returned; letting the collector run meanwhile only re-scans them (and the whole heap) in
        # vain: no cycles are made here.
        enabled = gc.isenabled()
        gc.disable()
        try:
            if self._compiled() is not None:
                return self._encode_batch_core(_as_list(inputs), add_special_tokens, num_threads)
            encs = [self._encode_input(x, add_special_tokens) for x in inputs]
            return pad_encodings(encs, self.padding) if self.padding else encs
        finally:
            if enabled:
                gc.enable()

    def _encode_batch_core(self, inputs: list, add_special_tokens: bool, num_threads: int | None) -> list:
        """The core's batch; the inputs it leaves (see core.py) are encoded here, then the batch padded."""
        encs, missing = self._core.encode_batch(inputs, add_special_tokens, _threads(num_threads))
        for i in missing:
            encs[i] = self._encode_input(inputs[i], add_special_tokens)
        return pad_encodings(encs, self.padding) if missing and self.padding else encs

    def encode_batch_ids(
        self,
        inputs: list[str] | list[tuple[str, str]],
        add_special_tokens: bool = True,
        num_threads: int | None = None,
    ) -> tuple[memoryview, memoryview]:
        """`encode_batch`'s ids without an Encoding per input: (ids, offsets), flat int32 ids and int64 offsets
        (one more than the inputs) so that input i's ids are ids[offsets[i]:offsets[i + 1]].

        For turning a corpus into arrays (`np.frombuffer(ids, np.int32)` needs no copy): on the compiled core
        no Python object is made per text, so every part of the batch runs on the threads.
        """
        inputs = _as_list(inputs)
        if self._compiled() is not None:
            flat = self._core.encode_batch_ids(inputs, add_special_tokens, _threads(num_threads))
            if flat is not None:  # (None: an input the core leaves to Python)
                return flat
        ids, offsets = array("i"), array("q", [0])
        for enc in self.encode_batch(inputs, add_special_tokens, num_threads):
            ids.extend(enc.ids)
            offsets.append(len(ids))
        return memoryview(ids), memoryview(offsets)

    def _encode_input(self, x: str | tuple[str, str], add_special_tokens: bool) -> Encoding:
        if not isinstance(x, (tuple, list)) or len(x) != 2:  # (not a pair: a text, else a one-line error)
            return self._post_process(self._encoder.encode(_as_text(x), 0), None, add_special_tokens)
        a, b = map(_as_text, x)
        return self._post_process(self._encoder.encode(a, 0), self._encoder.encode(b, 1), add_special_tokens)

    def _encode_words(self, words: list[str], pair: list[str] | None, add_special_tokens: bool) -> Encoding:
        """`encode` of pre-tokenized input: each word through the pipeline alone, its offsets within it and
        its index the word id of all its tokens (as HF)."""

        def sequence(items: list[str], type_id: int) -> Encoding:
            if isinstance(items, str):
                raise LlmlabError("is_pretokenized: give a list of words, not a string")
            encodings = [self._encoder.encode(w, type_id) for w in items] or [empty()]
            for i, e in enumerate(encodings):
                e.word_ids = [i] * len(e.ids)
            return merge_all(encodings)

        enc = self._post_process(
            sequence(words, 0), None if pair is None else sequence(pair, 1), add_special_tokens
        )
        return pad_encodings([enc], self.padding)[0] if self.padding else enc

    def _post_process(self, a: Encoding, b: Encoding | None, add_special_tokens: bool) -> Encoding:
        """HF's post_process: truncate (leaving room for special tokens), then add the special tokens."""
        if self.truncation:
            added = self.post_processor.added_tokens(b is not None) if self.post_processor else 0
            a, b = truncate_pair(a, b, self.truncation, added if add_special_tokens else 0)
        if self.post_processor:
            return self.post_processor.process(a, b, add_special_tokens)
        if b is None:
            return a
        a.sequence_ranges, b.sequence_ranges = {0: (0, len(a.ids))}, {1: (0, len(b.ids))}  # not their windows
        return merge(a, b)

    # ---- decoding --------------------------------------------------------------------------------------

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        """Turn ids back into text with the decoder (ids with no token are skipped, as HF).

        Args:
            ids: token ids.
            skip_special_tokens: leave out special added tokens ([CLS], [PAD], ...).

        Returns:
            The text.
        """
        compiled = self._compiled()
        if compiled is not None:
            text = compiled.decode(ids, skip_special_tokens)
            if text is not None:
                return text
        tokens = [self._id_to_token.get(i) for i in ids]
        tokens = [t for t in tokens if t is not None and not (skip_special_tokens and t in self._specials)]
        return self.decoder.decode(tokens) if self.decoder else " ".join(tokens)

    def decode_batch(self, batch: list[list[int]], skip_special_tokens: bool = True) -> list[str]:
        """`decode` for each list of ids."""
        return [self.decode(ids, skip_special_tokens) for ids in batch]

    # ---- runtime settings ------------------------------------------------------------------------------

    def enable_truncation(
        self, max_length: int, stride: int = 0, strategy: str = "longest_first", direction: str = "right"
    ) -> None:
        """Truncate encodings to `max_length` tokens (special tokens included); see `Truncation`."""
        self.truncation = Truncation(max_length, stride, strategy, direction)

    def no_truncation(self) -> None:
        self.truncation = None

    def enable_padding(
        self,
        direction: str = "right",
        pad_id: int = 0,
        pad_type_id: int = 0,
        pad_token: str = "[PAD]",
        length: int | None = None,
        pad_to_multiple_of: int | None = None,
    ) -> None:
        """Pad encodings to `length` (None: the longest of the batch); see `Padding`."""
        self.padding = Padding(direction, pad_id, pad_type_id, pad_token, length, pad_to_multiple_of)

    def no_padding(self) -> None:
        self.padding = None

    # ---- files -----------------------------------------------------------------------------------------

    def to_hf(self) -> dict:
        """The HF tokenizer.json object of this tokenizer."""

        def part(x):
            return None if x is None else x.to_hf()

        return {
            "version": "1.0",
            "truncation": part(self.truncation),
            "padding": part(self.padding),
            "added_tokens": [t.to_hf() for t in sorted(self.added_tokens, key=lambda t: t.id)],
            "normalizer": part(self.normalizer),
            "pre_tokenizer": part(self.pre_tokenizer),
            "post_processor": part(self.post_processor),
            "decoder": part(self.decoder),
            "model": self.model.to_hf(),
        }

    @classmethod
    def from_hf(cls, d: dict, source: str = "tokenizer.json") -> Tokenizer:
        """Build from an HF tokenizer.json object; errors name `source`. See `hf_json.tokenizer_from_hf`."""
        from llmlab.tokenizer.hf_json import tokenizer_from_hf  # hf_json builds Tokenizers, so import here

        return tokenizer_from_hf(d, source)

    @property
    def fingerprint(self) -> str:
        """sha256 of the tokenizer.json minus truncation and padding: equal fingerprints, equal tokens."""
        d = self.to_hf()
        del d["truncation"], d["padding"]
        return fingerprint(d)

    def save(self, path: str | os.PathLike) -> None:
        """Write tokenizer.json atomically (HF `tokenizers` loads it).

        Raises:
            LlmlabError: the folder does not exist.
        """
        atomic_write_json(path, self.to_hf())

    @classmethod
    def load(cls, path: str | os.PathLike, pattern: str | None = None) -> Tokenizer:
        """Read a tokenizer.json (ours or HF's), a SentencePiece .model, a tiktoken rank file (`.tiktoken`;
        `pattern` names its split regex, or the file's name does: cl100k_base.tiktoken), or a folder holding
        one of them or GPT-2's encoder.json + vocab.bpe (see `convert.py`).

        Raises:
            LlmlabError: the file is missing, corrupt, truncated, or holds something unsupported.
        """
        from llmlab.tokenizer.convert import load_any  # the converters build Tokenizers, so import here

        return load_any(path, pattern)


def _threads(num_threads: int | None) -> int:
    """Threads of the compiled core's batches: as asked, else LLMLAB_NUM_THREADS, else every CPU."""
    return num_threads or int(os.environ.get("LLMLAB_NUM_THREADS", 0)) or os.cpu_count() or 1


def _as_list(inputs) -> list:
    """The inputs of a batch as a list (a list as it is: the core reads it without a copy)."""
    return inputs if type(inputs) is list else list(inputs)


def _as_text(text: str | bytes) -> str:
    """`text` as str: bytes are decoded as UTF-8 (strictly: an invalid byte is a one-line error).

    Raises:
        LlmlabError: bytes that are not UTF-8, or something that is not text at all.
    """
    if isinstance(text, str):
        return text
    if isinstance(text, (bytes, bytearray)):
        try:
            return bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise LlmlabError(f"input text is not valid UTF-8 (byte {e.start}: {e.reason})") from None
    raise LlmlabError(f"input text must be str or UTF-8 bytes, not {type(text).__name__}")


def check_fingerprint(expected: str, actual: str, what: str) -> None:
    """Refuse a tokenizer other than the one an artefact was made with.

    Args:
        expected: the fingerprint recorded with the artefact.
        actual: the fingerprint of the tokenizer given now.
        what: the artefact, e.g. "model runs/a/model.safetensors".

    Raises:
        LlmlabError: the fingerprints differ; the message names both.
    """
    if expected != actual:
        raise LlmlabError(
            f"{what} was saved with tokenizer {expected[:12]}… but tokenizer {actual[:12]}… was given"
        )
