// Pre-tokenizers: normalized text -> words, each with the span of text it came from.
//
// References (pretokenize.py, HF tokenizers pre_tokenizers/):
// - BERT: split on whitespace (dropped) and punctuation (one word per mark); the classes come from Python.
// - GPT-2 byte level: its split regex  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   written out by hand (no regex engine), optionally after a prefix space.
// - Metaspace: ' ' -> '▁', a '▁' prepended, a split before each '▁'.
// Words are views into `full`: the text itself, or the text as the pre-tokenizer rewrote it (a prepended
// character, spaces replaced). Spans tile the text as pretokenize.py's `tiling_spans` does: a prepended
// character stands for the first character of the text.
#pragma once

#include "chartable.h"
#include "common.h"

namespace llmlab {

struct Word {
    uint32_t offset, length;  // the word in `full`
    int32_t start, end;       // the span of text it stands for
};

class PreTokenizer {
  public:
    enum Kind { kBert, kByteLevel, kMetaspace };
    enum Gpt2Class : uint8_t { kOther = 0, kLetter = 1, kNumber = 2, kSpace = 3 };
    enum BertClass : uint8_t { kWord = 0, kPunct = 1, kWhite = 2 };
    enum Prepend { kAlways = 0, kFirst = 1, kNever = 2 };

    Kind kind = kBert;
    CharTable classes;  // BERT: BertClass; byte level: Gpt2Class
    bool add_prefix_space = false, use_regex = true;  // byte level
    char32_t replacement = U'\u2581';                  // Metaspace
    Prepend prepend = kAlways;
    bool split_words = true;

    // Splits `text` into `words`, views into the returned buffer (`text` itself, or `full` when rewritten);
    // `first` says whether the text starts the input (Metaspace's prepend_scheme "first").
    View split(View text, bool first, Str& full, std::vector<Word>& words) const;

  private:
    void split_bert(View text, std::vector<Word>& words) const;
    void split_gpt2(View text, std::vector<Word>& words) const;
    size_t gpt2_match(View text, size_t i) const;
};

}  // namespace llmlab
