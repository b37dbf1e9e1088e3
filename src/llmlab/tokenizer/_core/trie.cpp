// Building the trie; see trie.h.
//
// The keys are sorted, so the keys below a node are one run of them (those sharing its prefix) and its
// children split that run by the next character. Nodes are made breadth-first from these runs: each node's
// children are appended together, in character order, which is the layout `Trie::child` searches.
#include "trie.h"

#include <algorithm>

namespace llmlab {

Trie::Trie(TrieKeys keys) {
    auto& all = keys.keys_;
    std::sort(all.begin(), all.end(), [&](const TrieKeys::Key& a, const TrieKeys::Key& b) {
        const int order = keys.key(a).compare(keys.key(b));
        return order ? order < 0 : a.offset < b.offset;  // of equal keys the last added comes last, and wins
    });
    size_t count = 1;  // nodes: the root, then one for each character a key does not share with the key before
    for (size_t i = 0; i < all.size(); ++i) {
        const View k = keys.key(all[i]);
        const View before = i ? keys.key(all[i - 1]) : View();
        size_t common = 0;
        while (common < k.size() && common < before.size() && k[common] == before[common]) ++common;
        count += k.size() - common;
    }
    // Until a node is built, its `first` and `value` hold its run of keys, all[first, value) (no array of runs:
    // the peak memory of loading).
    nodes_.reserve(count + 1);
    nodes_.push_back({0, static_cast<int32_t>(all.size()), 0});
    size_t depth = 0, level_end = 1;  // the nodes before level_end are at most `depth` characters deep
    for (size_t v = 0; v < nodes_.size(); ++v) {
        if (v == level_end) {  // the first node of the next level: the level after it is all appended by now
            ++depth;
            level_end = nodes_.size();
        }
        uint32_t i = nodes_[v].first;
        const uint32_t end = static_cast<uint32_t>(nodes_[v].value);
        nodes_[v].value = -1;
        for (; i < end && all[i].size == depth; ++i) nodes_[v].value = all[i].value;  // keys ending here
        nodes_[v].first = static_cast<uint32_t>(nodes_.size());
        while (i < end) {  // one child for each next character
            const char32_t c = keys.key(all[i])[depth];
            uint32_t j = i + 1;
            while (j < end && keys.key(all[j])[depth] == c) ++j;
            nodes_.push_back({c, static_cast<int32_t>(j), i});
            i = j;
        }
    }
    nodes_.push_back({0, -1, static_cast<uint32_t>(nodes_.size())});  // the end marker
    index_wide();
}

void Trie::index_wide() {
    const size_t n = nodes_.size() - 1;
    size_t edges = 0;
    for (size_t v = 0; v < n; ++v) {
        const uint32_t kids = nodes_[v + 1].first - nodes_[v].first;
        edges += kids > kWide ? kids : 0;
    }
    if (!edges) return;
    size_t cap = 16;
    wide_shift_ = 60;
    for (; cap < 2 * edges; cap <<= 1) --wide_shift_;  // at most half full: short probes
    wide_.assign(cap, -1);
    for (size_t v = 0; v < n; ++v) {
        if (nodes_[v + 1].first - nodes_[v].first <= kWide) continue;
        for (uint32_t k = nodes_[v].first; k < nodes_[v + 1].first; ++k) {
            size_t i = wide_slot(static_cast<int32_t>(v), nodes_[k].c);
            while (wide_[i] >= 0) i = (i + 1) & (cap - 1);
            wide_[i] = static_cast<int32_t>(k);
        }
    }
}

}  // namespace llmlab
