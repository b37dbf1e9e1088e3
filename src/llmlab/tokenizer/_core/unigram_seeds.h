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

// The candidate seeds among n sorted suffixes (seeds.py `_branching`): for each length 2..max_len, each group
// [first, last) of suffixes that share their first `length` characters (common[i] < length starts a group)
// where the substring branches (common[i] == length inside the group) or ends a word (to_end[first] == length)
// and occurs at least twice by weight, and fits the room at its first suffix (room[first] >= length). Ordered
// by length, then first; score = the group's summed weight x length.
struct Branching {
    std::vector<int64_t> length, first, last;
    std::vector<double> score;
};
Branching branching(const int32_t* common, const double* weight, const int64_t* to_end, const int32_t* room, size_t n,
                    int max_len);

}  // namespace llmlab
