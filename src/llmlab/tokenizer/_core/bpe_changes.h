// What one merge of the BPE trainer changes: the count of each pair it touches, and the words where it made
// each new pair (the words of that pair's queue entry).
// Reference: src/llmlab/tokenizer/bpe/words.py (`merge_few` / `merge_many` gather the same changes, by slot).
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "bpe_pairs.h"
#include "common.h"

namespace llmlab {

// What one merge changes: each pair's count, and the words where it made each pair. Merging (a, b) into n
// changes pairs of four shapes only, (n, x), (x, n), (b, x) and (x, a), so a change is found by its shape and
// its other symbol x in a table of four slots per id, without hashing; the table is emptied after the merge
// by moving to a new generation.
class MergeChanges {
  public:
    // Before merging (a, b) into `made`, while the ids are below `ids`.
    void start(uint32_t b, uint32_t made, size_t ids) {
        b_ = b, made_ = made;
        if (table_.size() < 4 * ids) table_.resize(std::max(4 * ids, 2 * table_.size()));
    }
    void lose(uint32_t left, uint32_t right, int64_t n) { changes_[index(left, right)].delta -= n; }
    void make(uint32_t left, uint32_t right, int64_t n, uint32_t word) {
        const uint32_t i = index(left, right);
        Change& c = changes_[i];
        c.delta += n;
        if (c.words == 0 || c.last != word) {  // words come in ascending order: each once
            c.last = word;
            ++c.words;
            staged_.push_back({i, word});
        }
    }
    // Apply the count changes to `counts`, then call made(key, count, words, n) for every pair made, in key
    // order, with its new count; then start afresh.
    template <class F>
    void flush(PairCounts& counts, F&& made) {
        order_.clear();
        for (uint32_t i = 0; i < changes_.size(); ++i) {
            if (i + kAhead < changes_.size()) counts.prefetch(changes_[i + kAhead].key);  // scattered slots
            Change& c = changes_[i];
            if (!c.words) {
                if (c.delta) counts.add(c.key, c.delta);
                continue;
            }
            c.delta = c.delta ? counts.add(c.key, c.delta) : counts.get(c.key);  // from here on: the new count
            order_.push_back(i);
        }
        std::sort(order_.begin(), order_.end(), [&](uint32_t x, uint32_t y) { return changes_[x].key < changes_[y].key; });
        uint32_t at = 0;  // the words of change i go to words_[at_i, at_i + words): a counting sort of `staged_`
        for (uint32_t i : order_) changes_[i].last = at, at += changes_[i].words;
        words_.resize(at);
        for (const auto& [i, word] : staged_) words_[changes_[i].last++] = word;
        for (uint32_t i : order_) {
            const Change& c = changes_[i];
            made(c.key, c.delta, words_.data() + c.last - c.words, c.words);
        }
        changes_.clear();
        staged_.clear();
        if (++generation_ == 0) {  // after 2^32 merges: clear the table once
            std::fill(table_.begin(), table_.end(), Slot{});
            generation_ = 1;
        }
    }
    size_t bytes() const {
        return changes_.capacity() * sizeof(Change) + table_.capacity() * sizeof(Slot) + staged_.capacity() * 8 +
               (words_.capacity() + order_.capacity()) * 4;
    }

  private:
    static constexpr uint32_t kAhead = 8;  // pairs prefetched ahead of the one being counted
    struct Change {
        uint64_t key;
        int64_t delta;         // the change of its count (in `flush`, once applied: the new count)
        uint32_t last, words;  // the last word that made the pair, how many did
    };
    struct Slot {
        uint32_t generation = 0, index = 0;
    };
    uint32_t index(uint32_t left, uint32_t right) {
        // One slot per pair: a pair of two shapes (as (n, a)) takes the first that fits it, (n, x) before (x, a).
        const size_t slot = left == made_    ? 4 * size_t{right}
                            : right == made_ ? 4 * size_t{left} + 1
                            : left == b_     ? 4 * size_t{right} + 2
                                             : 4 * size_t{left} + 3;  // (x, a)
        Slot& s = table_[slot];
        if (s.generation != generation_) {
            s = {generation_, static_cast<uint32_t>(changes_.size())};
            changes_.push_back({pair_key(left, right), 0, 0, 0});
        }
        return s.index;
    }
    std::vector<Change> changes_;
    std::vector<Slot> table_;  // (shape, other symbol) -> the pair's change, when of this generation
    uint32_t b_ = 0, made_ = 0;  // of the merge of (a, b) into made
    std::vector<std::pair<uint32_t, uint32_t>> staged_;  // (change, word), in the order made
    std::vector<uint32_t> words_;
    std::vector<uint32_t> order_;  // the changes that made a pair, by key
    uint32_t generation_ = 1;
};

}  // namespace llmlab
