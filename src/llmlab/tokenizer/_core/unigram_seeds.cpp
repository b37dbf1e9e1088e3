// Suffix sort of the Unigram trainer's seeds: a comparison sort on at most `width` code points per suffix.
// Reference: src/llmlab/tokenizer/unigram/seeds.py (`_suffix_order`, `_lcp`).
//
// The reference ranks every position by its first 2^j characters for j = 0, 1, ... (prefix doubling) and
// sorts by the last rank, ties by position; the corpus holds each distinct word once, so two suffixes share
// only a few characters and comparing them directly is cheaper than building the ranks. Each suffix's first
// three code points are packed into one integer beside it, so that most comparisons read no text at all.
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
    const size_t w = static_cast<size_t>(std::max(width, 1));
    const size_t packed = std::min<size_t>(w, 3);  // code points in the key: 21 bits each, in their order
    struct Suffix {  // 12 bytes
        uint32_t high, low;  // the first `packed` code points, each + 2 (0: past the end, 1: the separator -1)
        int32_t at;
    };
    std::vector<Suffix> suffixes;
    suffixes.reserve(static_cast<size_t>(std::count(keep, keep + n, true)));
    for (size_t p = 0; p < n; ++p) {
        if (!keep[p]) continue;
        uint64_t key = 0;
        for (size_t i = 0; i < 3; ++i) key = key << 21 | (i < packed && p + i < n ? static_cast<uint64_t>(codes[p + i] + 2) : 0);
        suffixes.push_back({static_cast<uint32_t>(key >> 32), static_cast<uint32_t>(key), static_cast<int32_t>(p)});
    }
    std::sort(suffixes.begin(), suffixes.end(), [&](const Suffix& a, const Suffix& b) {
        if (a.high != b.high || a.low != b.low) return a.high != b.high ? a.high < b.high : a.low < b.low;
        const size_t l = packed + shared(a.at + packed, b.at + packed, w - packed);
        return l < w ? at(a.at + l) < at(b.at + l) : a.at < b.at;
    });
    order.resize(suffixes.size());
    for (size_t i = 0; i < suffixes.size(); ++i) order[i] = suffixes[i].at;
    std::vector<Suffix>().swap(suffixes);
    common.assign(order.size(), 0);
    for (size_t i = 1; i < order.size(); ++i) common[i] = static_cast<int32_t>(shared(order[i - 1], order[i], 2 * w - 1));
}

Branching branching(const int32_t* common, const double* weight, const int64_t* to_end, const int32_t* room, size_t n,
                    int max_len) {
    Branching out;
    for (int64_t length = 2; length <= max_len; ++length) {
        for (size_t first = 0, last; first < n; first = last) {
            double freq = weight[first];  // word counts: whole numbers, so any order of summing gives the same
            bool branches = false;
            for (last = first + 1; last < n && common[last] >= length; ++last) {
                freq += weight[last];
                branches |= common[last] == length;
            }
            if ((branches || (to_end[first] == length && freq >= 2)) && room[first] >= length) {
                out.length.push_back(length);
                out.first.push_back(static_cast<int64_t>(first));
                out.last.push_back(static_cast<int64_t>(last));
                out.score.push_back(freq * static_cast<double>(length));
            }
        }
    }
    return out;
}

}  // namespace llmlab
