// A trie over code points, one hash lookup per step: the longest-match searches of WordPiece, Unigram's
// lattice and the added-token matcher walk it character by character.
#pragma once

#include "common.h"

namespace llmlab {

class Trie {
  public:
    Trie() : values_(1, -1) {}

    void insert(View key, int32_t value) {
        int32_t node = 0;
        for (char32_t c : key) {
            int32_t next = child(node, c);
            if (next < 0) {
                next = static_cast<int32_t>(values_.size());
                values_.push_back(-1);
                edges_.put(edge(node, c), next);
            }
            node = next;
        }
        values_[node] = value;
    }
    // The child of `node` along `c`, or -1.
    int32_t child(int32_t node, char32_t c) const {
        const int32_t* next = edges_.find(edge(node, c));
        return next ? *next : -1;
    }
    // The node that `key` leads to from the root, or -1.
    int32_t walk(View key) const {
        int32_t node = 0;
        for (size_t i = 0; i < key.size() && node >= 0; ++i) node = child(node, key[i]);
        return node;
    }
    // The value stored at `node`, or -1.
    int32_t value(int32_t node) const { return values_[node]; }

  private:
    static uint64_t edge(int32_t node, char32_t c) { return (static_cast<uint64_t>(node) << 21) | c; }
    U64Map<int32_t> edges_;
    std::vector<int32_t> values_;
};

}  // namespace llmlab
