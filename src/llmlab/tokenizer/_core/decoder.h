// Decoders: tokens back to text, for the three standard pipelines.
// References: decoders.py (HF tokenizers decoders/wordpiece.rs, byte_level.rs, metaspace.rs).
// - WordPiece: continuing tokens lose their prefix, the others get a space; `cleanup` removes BERT's spaces
//   before punctuation and contractions, token by token.
// - ByteLevel: GPT-2 characters back to bytes (a token with another character is kept as its UTF-8); the
//   caller decodes the bytes as UTF-8 with Python's "replace" handler, as decoders.py does.
// - Metaspace: '▁' -> ' '; the first token drops its '▁'s unless prepend_scheme is "never".
#pragma once

#include <array>

#include "common.h"

namespace llmlab {

struct Decoder {
    enum Kind { kNone, kWordPiece, kByteLevel, kMetaspace, kPython } kind = kNone;
    Str prefix;
    bool cleanup = true;
    char32_t replacement = U'\u2581';
    bool prepend_never = false;
    std::array<char32_t, 256> byte_chars{};

    // The text of `tokens` (kNone: joined by spaces); byte level: its bytes, to decode as UTF-8.
    std::string decode(const std::vector<View>& tokens) const;
};

}  // namespace llmlab
