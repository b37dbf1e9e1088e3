// A trie over code points: the longest-match searches of WordPiece, Unigram's lattice and the added-token
// matcher walk it character by character.
//
// Built once from all its keys (TrieKeys), then read-only. The nodes are stored in breadth-first order, so the
// children of a node are consecutive nodes, sorted by character: a step is a binary search among them. A node
// takes 12 bytes (its character, its value, where its children start) and the edges need no table of their
// own: a hash map of edges took about 3 times that at its load factor (issue 10: peak memory of encoding).
// The few nodes with many children (the root, "##", the first characters of Chinese words) would cost up to
// a dozen search steps: their edges also go in a small hash table, whose slots hold only the child (4 bytes),
// checked against the node's children.
#pragma once

#include "common.h"

namespace llmlab {

// The keys of a trie and their values, gathered before it is built (one arena, no string per key).
class TrieKeys {
  public:
    void reserve(size_t keys, size_t chars) {
        keys_.reserve(keys);
        chars_.reserve(chars);
    }
    // A key and its value; a key added twice keeps its last value.
    void add(View key, int32_t value) {
        keys_.push_back({static_cast<uint32_t>(chars_.size()), static_cast<uint32_t>(key.size()), value});
        chars_.append(key);
    }

  private:
    friend class Trie;
    struct Key {
        uint32_t offset, size;
        int32_t value;
    };
    View key(const Key& k) const { return View(chars_).substr(k.offset, k.size); }
    std::vector<Key> keys_;
    Str chars_;
};

class Trie {
  public:
    Trie() : nodes_{{0, -1, 1}, {0, -1, 1}} {}  // the root alone (and the end marker)
    explicit Trie(TrieKeys keys);               // consumes the keys: their memory is freed once built

    // The child of `node` along `c`, or -1.
    int32_t child(int32_t node, char32_t c) const {
        const Node* nodes = nodes_.data();
        uint32_t lo = nodes[node].first, n = nodes[node + 1].first - lo;
        if (n > kWide) return wide_child(node, c, lo, n);
        while (n > 1) {  // the last child whose character is <= c (no branch to mispredict: a conditional move)
            const uint32_t half = n / 2;
            lo = nodes[lo + half].c <= c ? lo + half : lo;
            n -= half;
        }
        return n && nodes[lo].c == c ? static_cast<int32_t>(lo) : -1;
    }
    // The node that `key` leads to from the root, or -1.
    int32_t walk(View key) const {
        int32_t node = 0;
        for (size_t i = 0; i < key.size() && node >= 0; ++i) node = child(node, key[i]);
        return node;
    }
    // The value stored at `node`, or -1.
    int32_t value(int32_t node) const { return nodes_[node].value; }
    // f(character, child) for every child of `node`.
    template <class F>
    void for_each_child(int32_t node, F&& f) const {
        for (uint32_t k = nodes_[node].first; k < nodes_[node + 1].first; ++k) f(nodes_[k].c, static_cast<int32_t>(k));
    }

  private:
    static constexpr uint32_t kWide = 8;  // nodes with more children than this are looked up in `wide_`

    size_t wide_slot(int32_t node, char32_t c) const {  // Fibonacci hashing: the top bits of one product
        return ((static_cast<uint64_t>(node) << 21 | c) * 0x9e3779b97f4a7c15ULL) >> wide_shift_;
    }
    int32_t wide_child(int32_t node, char32_t c, uint32_t lo, uint32_t n) const {
        const size_t mask = wide_.size() - 1;
        for (size_t i = wide_slot(node, c);; i = (i + 1) & mask) {
            const int32_t k = wide_[i];
            if (k < 0) return -1;
            if (static_cast<uint32_t>(k) - lo < n && nodes_[k].c == c) return k;  // a child of `node`, along c
        }
    }
    void index_wide();

    struct Node {
        char32_t c;      // the character of the edge into this node
        int32_t value;   // -1: no key ends here
        uint32_t first;  // its first child; its children end where the next node's begin
    };
    std::vector<Node> nodes_;  // breadth-first, then one end marker (whose `first` closes the last node)
    std::vector<int32_t> wide_;  // open addressing by (node, character): the children of wide nodes, -1: empty
    int wide_shift_ = 0;         // 64 - log2(wide_.size()), once it is made
};

}  // namespace llmlab
