// Suffix sort of the Unigram trainer's seeds: a comparison sort on at most `width` code points per suffix.
// Reference: src/llmlab/tokenizer/unigram/seeds.py (`_suffix_order`, `_lcp`).
//
// The reference ranks every position by its first 2^j characters for j = 0, 1, ... (prefix doubling) and
// sorts by the last rank, ties by position; the corpus holds each distinct word once, so two suffixes share
// only a few characters and comparing them directly is cheaper than building the ranks.
#include "unigram_seeds.h"

#include <algorithm>
#include <limits>

namespace llmlab {

void sorted_suffixes(const int32_t* codes, size_t n, const bool* keep, int width, std::vector<int32_t>& order,
                     std::vector<int32_t>& common) {
    auto at = [&](size_t p) -> int64_t { return p < n ? codes[p] : std::numeric_limits<int64_t>::min(); };
    auto shared = [&](size_t a, size_t b, size_t most) {  // the length of the common prefix, up to `most`
        size_t l = 0;
        while (l < most && at(a + l) == at(b + l)) ++l;
        return l;
    };
    order.clear();
    for (size_t p = 0; p < n; ++p)
        if (keep[p]) order.push_back(static_cast<int32_t>(p));
    const size_t w = static_cast<size_t>(std::max(width, 1));
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
        const size_t l = shared(a, b, w);
        return l < w ? at(a + l) < at(b + l) : a < b;
    });
    common.assign(order.size(), 0);
    for (size_t i = 1; i < order.size(); ++i) common[i] = static_cast<int32_t>(shared(order[i - 1], order[i], 2 * w - 1));
}

}  // namespace llmlab
