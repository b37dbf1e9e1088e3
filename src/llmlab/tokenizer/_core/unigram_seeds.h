// The suffix sort behind the Unigram trainer's seed pieces: the positions of the corpus array sorted by the
// text that follows them, and the common prefix of each with the one before.
// Reference: src/llmlab/tokenizer/unigram/seeds.py (`_suffix_order` by prefix doubling and `_lcp` by binary
// lifting), itself standing in for the suffix array sentencepiece builds (unigram_model_trainer.cc
// `MakeSeedSentencePieces`); tests/tokenizer/test_core_train_unigram.py proves this equal to it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace llmlab {

// The positions p with keep[p], sorted by their first `width` code points (past the end of the array comes a
// padding lower than any code), then by position; and, for each, the length of the common prefix with the one
// before it (0 for the first), at most 2 * width - 1 (as many as the reference's binary lifting can count).
void sorted_suffixes(const int32_t* codes, size_t n, const bool* keep, int width, std::vector<int32_t>& order,
                     std::vector<int32_t>& common);

}  // namespace llmlab
