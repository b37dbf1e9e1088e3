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

// What one merge changes: each pair's count, and the words where it made each pair. A small table keyed by
// pair (a merge touches a few thousand pairs at most), emptied after the merge by moving to a new generation.
class MergeChanges {
  public:
    void lose(uint64_t key, int64_t n) { changes_[index(key)].delta -= n; }
    void make(uint64_t key, int64_t n, uint32_t word) {
        const uint32_t i = index(key);
        Change& c = changes_[i];
        c.delta += n;
        if (c.words == 0 || c.last != word) {  // words come in ascending order: each once
            c.last = word;
            ++c.words;
            staged_.push_back({i, word});
        }
    }
    // Apply the count changes to `counts`, then call made(key, words, n) for every pair made, in key order;
    // then start afresh.
    template <class F>
    void flush(PairCounts& counts, F&& made) {
        std::vector<uint32_t> order;
        for (uint32_t i = 0; i < changes_.size(); ++i) {
            if (i + kAhead < changes_.size()) counts.prefetch(changes_[i + kAhead].key);  // scattered slots
            if (changes_[i].delta) counts.add(changes_[i].key, changes_[i].delta);
            if (changes_[i].words) order.push_back(i);
        }
        std::sort(order.begin(), order.end(), [&](uint32_t x, uint32_t y) { return changes_[x].key < changes_[y].key; });
        uint32_t at = 0;  // the words of change i go to words_[at_i, at_i + words): a counting sort of `staged_`
        for (uint32_t i : order) changes_[i].last = at, at += changes_[i].words;
        words_.resize(at);
        for (const auto& [i, word] : staged_) words_[changes_[i].last++] = word;
        for (uint32_t i : order) {
            const Change& c = changes_[i];
            made(c.key, words_.data() + c.last - c.words, c.words);
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
               words_.capacity() * 4;
    }

  private:
    static constexpr uint32_t kAhead = 8;  // pairs prefetched ahead of the one being counted
    struct Change {
        uint64_t key;
        int64_t delta;
        uint32_t last, words;  // the last word that made the pair, how many did
    };
    struct Slot {
        uint32_t generation = 0, index = 0;
    };
    uint32_t index(uint64_t key) {
        if ((changes_.size() + 1) * 2 > table_.size()) grow();
        for (size_t i = mix64(key) & (table_.size() - 1);; i = (i + 1) & (table_.size() - 1)) {
            Slot& s = table_[i];
            if (s.generation != generation_) {
                s = {generation_, static_cast<uint32_t>(changes_.size())};
                changes_.push_back({key, 0, 0, 0});
                return s.index;
            }
            if (changes_[s.index].key == key) return s.index;
        }
    }
    void grow() {
        table_.assign(table_.empty() ? 256 : table_.size() * 2, Slot{});
        for (uint32_t k = 0; k < changes_.size(); ++k) {
            size_t i = mix64(changes_[k].key) & (table_.size() - 1);
            while (table_[i].generation == generation_) i = (i + 1) & (table_.size() - 1);
            table_[i] = {generation_, k};
        }
    }
    std::vector<Change> changes_;
    std::vector<Slot> table_;
    std::vector<std::pair<uint32_t, uint32_t>> staged_;  // (change, word), in the order made
    std::vector<uint32_t> words_;
    uint32_t generation_ = 1;
};

}  // namespace llmlab
