// Byte-pair encoding: replay the merges on one word, lowest rank first, leftmost first (HF's order).
// Reference: src/llmlab/tokenizer/bpe/model.py (HF tokenizers models/bpe/word.rs).
#pragma once

#include <array>
#include <tuple>

#include "model.h"

namespace llmlab {

struct BpeSettings {
    int32_t unk_id = -1;         // -1: no unk token (unknown characters are dropped)
    bool has_unk_token = false;  // an unk token is named (it may be missing from the vocab)
    Str prefix, suffix;          // continuing_subword_prefix, end_of_word_suffix
    bool ignore_merges = false, fuse_unk = false, byte_fallback = false;
};

struct BpeConfig : BpeSettings {  // the settings and the tables (which the model keeps in its own form)
    std::vector<std::pair<Str, int32_t>> vocab;
    std::vector<std::array<int32_t, 3>> merges;  // (left id, right id, merged id), by rank
    // Byte level: the pieces each listed character's UTF-8 bytes merge into on their own, where bpe/chars.py
    // proves that starting from them changes nothing (key: the bytes, little-endian).
    std::vector<std::tuple<uint32_t, std::vector<int32_t>, std::vector<int32_t>>> char_pieces;
};

class Bpe : public Model {
  public:
    explicit Bpe(const BpeConfig& config);
    bool tokenize(View word, std::vector<Token>& out) const override;
    bool tokenize_bytes(View chars, View word, std::vector<Token>& out) const override;

  private:
    bool symbols(View word, std::vector<int32_t>& ids, std::vector<Token>& spans) const;
    // A symbol of the word being merged: its token, how many initial symbols it covers, and the key of
    // merging it with the next symbol, (rank << 32 | merged id), or kNone.
    struct Symbol {
        int32_t id, size;
        uint64_t rank;
    };
    static constexpr uint64_t kNone = ~0ULL;

    size_t premerged(View chars, View word, Symbol* syms) const;
    bool plain_symbols(View word, Symbol* symbols) const;
    size_t merge(Symbol* symbols, size_t n) const;
    uint64_t rank_of(int32_t left, int32_t right) const {
        const uint64_t* r =
            ranks_.find((static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right));
        return r ? *r : kNone;  // ordered by rank
    }
    int32_t piece_id(View word, size_t i, Str& scratch) const;

    StrMap vocab_;
    std::vector<int32_t> char_ids_;       // code point < 0x10000 -> id of that one-character token, or -1
    U64Map<uint64_t> ranks_;              // (left << 32 | right) -> (rank << 32 | merged id)
    std::array<int32_t, 256> byte_ids_;   // "<0xXX>" ids with byte fallback (-1: missing)
    U64Map<uint64_t> char_pieces_;        // a character -> (offset << 32 | count) in pieces_
    std::vector<std::pair<int32_t, int32_t>> pieces_;  // (id, bytes covered)
    BpeSettings config_;
    bool simple_;                         // no prefix and no suffix
};

}  // namespace llmlab
