// BPE training (Sennrich et al. 2016): count the adjacent pairs of the counted words, then merge the best pair
// again and again, updating the counts incrementally, exactly as Hugging Face tokenizers' BpeTrainer does.
// Reference: src/llmlab/tokenizer/bpe/trainer.py (with words.py and pairs.py), tested merge for merge against
// HF (tokenizers/src/models/bpe/trainer.rs and word.rs); tests/tokenizer/test_core_train_bpe.py proves this
// equal to it.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "common.h"

namespace llmlab {

// The counted words as a WordTable holds them (word_table.py), and the symbol id of each character.
struct BpeWords {
    const uint32_t* codes;    // (C,) code points, the words one after the other
    const int64_t* lengths;   // (W,) characters per word
    const int64_t* counts;    // (W,) each word's count
    size_t n_words;
    const int32_t* first_id;  // code point -> symbol id of a word's first character (-1: dropped)
    const int32_t* rest_id;   // the same for the other characters (the continuing-subword-prefix tokens)
    size_t n_ids;             // entries in both tables
};

struct BpeOptions {
    int64_t vocab_size;
    int64_t min_frequency;
    Str prefix;                // continuing_subword_prefix ("" for none)
    int64_t max_token_length;  // -1: no limit
};

struct BpeMerges {
    std::vector<uint64_t> merges;  // each merged pair as left << 21 | right, in order
    std::vector<Str> new_tokens;   // the tokens the merges added, by id after the given ones
    size_t peak_bytes = 0;         // the most memory the trainer's state held (pairs, queue, words)
};

// Each distinct code point of the words, ascending; its count: the counts of the words holding it, summed once
// per occurrence (in doubles, as trainer.py's `_char_counts` does in numpy); and where it first comes after a
// word's first character (its index in `codes`, -1: never): the alphabet, its order and the prefixed characters'.
void bpe_char_counts(const BpeWords& words, std::vector<uint32_t>& chars, std::vector<double>& weights,
                     std::vector<int64_t>& later);

// Merge until `tokens` (the vocabulary so far: specials, alphabet, prefixed characters) reaches the
// vocabulary size, no pair is left, or the best count is below min_frequency. `progress(done, wanted)`
// is called after each merge.
BpeMerges bpe_learn_merges(const BpeWords& words, std::vector<Str> tokens, const BpeOptions& options,
                           const std::function<void(size_t, size_t)>& progress);

}  // namespace llmlab
