"""Template post-processors: special tokens placed around the sequences, and type ids for each part.

Follows Hugging Face `tokenizers` (tokenizers/src/processors/template.rs, bert.rs, roberta.rs), reads/writes
the same JSON and is tested against it, overflowing windows included:
- `TemplateProcessing`: a template per input kind, e.g. `[CLS] $A [SEP]` and `[CLS] $A [SEP] $B:1 [SEP]:1`,
  each piece a sequence or a special token with its type id (BERT, Devlin et al. 2019; BOS/EOS).
- `BertProcessing`, `RobertaProcessing`: the fixed BERT and RoBERTa (Liu et al. 2019) templates, run as
  templates; RoBERTa also trims offsets as the byte-level processor does.
"""

from __future__ import annotations

from llmlab.errors import LlmlabError
from llmlab.tokenizer.encoding import Encoding
from llmlab.tokenizer.postprocess import PostProcessor, trim_offsets

__all__ = ["BertProcessing", "RobertaProcessing", "TemplateProcessing"]


def _with_type_id(e: Encoding, type_id: int) -> Encoding:
    """`e` with every type id set to `type_id`; its overflowing windows keep theirs (as HF)."""
    return Encoding(
        e.ids,
        e.tokens,
        e.offsets,
        [type_id] * len(e.ids),
        e.attention_mask,
        e.special_tokens_mask,
        e.overflowing,
        e.word_ids,
        e.sequence_ranges,
    )


def _parse_piece(piece: str | dict) -> tuple[str, str, int]:
    """One template piece as (kind, name, type_id): kind "seq" (name "A"/"B") or "special" (name its key).

    Accepts HF's JSON form ({"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {...}}) and its string
    shorthand ("$A", "$B:1", "$1", "[SEP]:1").
    """
    if isinstance(piece, dict) and len(piece) == 1:
        ((kind, body),) = piece.items()
        if kind in ("Sequence", "SpecialToken") and isinstance(body, dict):
            return ("seq" if kind == "Sequence" else "special"), body["id"], int(body.get("type_id", 0))
    if isinstance(piece, str) and piece:
        name, _, type_id = piece.partition(":")
        if type_id and not type_id.isdigit():
            raise LlmlabError(f"template piece {piece!r}: the type id after ':' must be a number")
        if not name.startswith("$"):
            return "special", name, int(type_id or 0)
        rest = name[1:].upper()
        if rest in ("", "A", "B") or rest.isdigit():
            seq = "B" if rest == "B" else "A"
            return "seq", seq, int(rest if rest.isdigit() else type_id or 0)
    raise LlmlabError(f"bad template piece {piece!r}")


class TemplateProcessing(PostProcessor):
    """Special tokens placed by a template, one for single inputs and one for pairs."""

    def __init__(self, single: list | str, pair: list | str, special_tokens: dict | list):
        """Build the processor.

        Args:
            single: template for one sequence: HF JSON pieces, or a string such as "[CLS] $A [SEP]".
            pair: template for two sequences; must use both $A and $B.
            special_tokens: {name: {"id": name, "ids": [...], "tokens": [...]}} (HF JSON), or a list of
                (token, id) pairs.

        Raises:
            LlmlabError: a malformed piece, a pair template without both sequences, a special token the
                templates use but `special_tokens` lacks, ids and tokens of different lengths.
        """
        if isinstance(special_tokens, list):
            special_tokens = {t: {"id": t, "ids": [i], "tokens": [t]} for t, i in special_tokens}
        self.special_tokens = {
            k: {"id": k, "ids": list(v["ids"]), "tokens": list(v["tokens"])}
            for k, v in special_tokens.items()
        }
        self.single = [_parse_piece(p) for p in (single.split() if isinstance(single, str) else single)]
        self.pair = [_parse_piece(p) for p in (pair.split() if isinstance(pair, str) else pair)]
        self._check()
        self._specials = {
            (name, t): self._special(name, t)
            for kind, name, t in self.single + self.pair
            if kind == "special"
        }

    def _check(self) -> None:
        if {name for kind, name, _ in self.pair if kind == "seq"} != {"A", "B"}:
            raise LlmlabError("template for pairs must use both sequences $A and $B")
        for kind, name, _ in self.single + self.pair:
            if kind == "special" and name not in self.special_tokens:
                raise LlmlabError(
                    f"template uses special token {name!r}, which special_tokens does not define"
                )
        for name, st in self.special_tokens.items():
            if len(st["ids"]) != len(st["tokens"]):
                raise LlmlabError(f"special token {name!r}: ids and tokens must have the same length")

    def _special(self, name: str, type_id: int) -> Encoding:
        ids = self.special_tokens[name]["ids"]
        tokens = self.special_tokens[name]["tokens"]
        n = len(ids)
        return Encoding(ids, tokens, [(0, 0)] * n, [type_id] * n, [1] * n, [1] * n, [], [None] * n)

    def process(
        self, encoding: Encoding, pair: Encoding | None = None, add_special_tokens: bool = True
    ) -> Encoding:
        plain = type(self).process_encodings is TemplateProcessing.process_encodings
        inputs = [encoding] if pair is None else [encoding, pair]
        if not plain or any(e.overflowing or e.word_ids is None for e in inputs):
            return super().process(encoding, pair, add_special_tokens)
        # the common case, no windows: concatenate the template's parts directly (what merge_all would do)
        ids, tokens, offsets, types, attention, special, words, ranges = [], [], [], [], [], [], [], {}
        for kind, name, type_id in self.single if pair is None else self.pair:
            if kind == "seq":
                e = inputs[name == "B"]
                types += [type_id] * len(e.ids)
                ranges[int(name == "B")] = (len(ids), len(ids) + len(e.ids))
            elif add_special_tokens:
                e = self._specials[name, type_id]
                types += e.type_ids
            else:
                continue
            ids += e.ids
            tokens += e.tokens
            offsets += e.offsets
            attention += e.attention_mask
            special += e.special_tokens_mask
            words += e.word_ids
        return Encoding(ids, tokens, offsets, types, attention, special, [], words, ranges)

    def process_encodings(self, encodings: list[Encoding], add_special_tokens: bool) -> list[Encoding]:
        template = self.pair if len(encodings) == 2 else self.single
        out = []
        for kind, name, type_id in template:
            if kind == "seq":
                out.append(_with_type_id(encodings[name == "B"], type_id))
            elif add_special_tokens:
                out.append(self._specials[name, type_id])
        return out

    def added_tokens(self, is_pair: bool) -> int:
        template = self.pair if is_pair else self.single
        return sum(len(self.special_tokens[name]["ids"]) for kind, name, _ in template if kind == "special")

    def to_hf(self) -> dict:
        def pieces(template: list[tuple[str, str, int]]) -> list[dict]:
            return [
                {"Sequence" if k == "seq" else "SpecialToken": {"id": n, "type_id": t}}
                for k, n, t in template
            ]

        return {
            "type": "TemplateProcessing",
            "single": pieces(self.single),
            "pair": pieces(self.pair),
            "special_tokens": {k: dict(v) for k, v in sorted(self.special_tokens.items())},
        }


class BertProcessing(TemplateProcessing):
    """BERT: `[CLS] A [SEP]` and `[CLS] A [SEP] B [SEP]` (B's part type 1); nothing added without specials."""

    def __init__(self, sep: tuple[str, int], cls: tuple[str, int]):
        self.sep, self.cls = (sep[0], int(sep[1])), (cls[0], int(cls[1]))
        c = self.cls[0]
        s = self.sep[0]
        super().__init__([c, "$A", s], [c, "$A", s, "$B:1", f"{s}:1"], [self.cls, self.sep])

    def process_encodings(self, encodings: list[Encoding], add_special_tokens: bool) -> list[Encoding]:
        return super().process_encodings(encodings, True) if add_special_tokens else encodings

    def to_hf(self) -> dict:
        return {"type": "BertProcessing", "sep": list(self.sep), "cls": list(self.cls)}


def _all_type_ids_zero(e: Encoding) -> Encoding:
    """`e` with type id 0 everywhere, its windows included (RoBERTa has no segment embeddings)."""
    return Encoding(
        e.ids,
        e.tokens,
        e.offsets,
        [0] * len(e.ids),
        e.attention_mask,
        e.special_tokens_mask,
        [_all_type_ids_zero(w) for w in e.overflowing],
        e.word_ids,
        e.sequence_ranges,
    )


class RobertaProcessing(TemplateProcessing):
    """RoBERTa: `<s> A </s>` and `<s> A </s> </s> B </s>` (all type 0), byte-level offset trimming."""

    def __init__(
        self,
        sep: tuple[str, int],
        cls: tuple[str, int],
        trim_offsets: bool = True,
        add_prefix_space: bool = True,
    ):
        self.sep, self.cls = (sep[0], int(sep[1])), (cls[0], int(cls[1]))
        self.trim_offsets, self.add_prefix_space = trim_offsets, add_prefix_space
        c = self.cls[0]
        s = self.sep[0]
        super().__init__([c, "$A", s], [c, "$A", s, s, "$B", s], [self.cls, self.sep])

    def process_encodings(self, encodings: list[Encoding], add_special_tokens: bool) -> list[Encoding]:
        if self.trim_offsets:
            encodings = [trim_offsets(e, self.add_prefix_space) for e in encodings]
        if not add_special_tokens:  # HF: type ids 0, but the windows keep theirs
            return [_with_type_id(e, 0) for e in encodings]
        return super().process_encodings([_all_type_ids_zero(e) for e in encodings], True)

    def added_tokens(self, is_pair: bool) -> int:
        return 4 if is_pair else 2

    def to_hf(self) -> dict:
        return {
            "type": "RobertaProcessing",
            "sep": list(self.sep),
            "cls": list(self.cls),
            "trim_offsets": self.trim_offsets,
            "add_prefix_space": self.add_prefix_space,
        }
