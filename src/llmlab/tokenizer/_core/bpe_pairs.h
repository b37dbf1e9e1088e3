// The pairs of the BPE trainer: each pair's count, and the merge queue whose entries name the words to merge.
// Reference: src/llmlab/tokenizer/bpe/pairs.py, which reproduces Hugging Face tokenizers' bookkeeping
// (tokenizers/src/models/bpe/trainer.rs):
// - a pair's count changes only by what a word merge reports (bpe_trainer.cpp); the merged pair's own count
//   is left alone;
// - the queue is lazy: an entry whose count is out of date is queued again with the current one; the best
//   entry has the highest count, then the smallest (left id, right id), then came first;
// - an entry carries the words where its pair was made when it was queued (HF's `pos` set), and only those
//   words are merged.
// Memory: a count takes 16 bytes in a table, at most half full, that drops pairs whose count falls to 0 (they
// hold no occurrence; one made again starts from 0, as it would); a queue entry 24 bytes; its words, ascending, are varint-coded
// gaps (about 1.2 bytes a word) in a pool of 1 MiB blocks, compacted when the lists of merged entries outweigh
// the rest, so nothing is ever copied whole.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include "common.h"

namespace llmlab {

constexpr int kIdBits = 21;  // a pair's key: left << kIdBits | right
constexpr uint64_t kIdMask = (1u << kIdBits) - 1;
inline uint64_t pair_key(uint32_t left, uint32_t right) { return static_cast<uint64_t>(left) << kIdBits | right; }

// Pair key -> weighted count, open addressing with linear probing.
class PairCounts {
  public:
    int64_t get(uint64_t key) const {
        if (slots_.empty()) return 0;
        for (size_t i = home(key);; i = next(i)) {
            if (slots_[i].key == key) return slots_[i].count;
            if (slots_[i].key == kEmpty) return 0;
        }
    }
    // Adds `delta` to the pair's count; returns the new count.
    int64_t add(uint64_t key, int64_t delta) {
        if ((size_ + 1) * 2 > slots_.size()) grow();  // half full at most: short probe runs for misses and erases
        size_t i = home(key);
        while (slots_[i].key != key && slots_[i].key != kEmpty) i = next(i);
        if (slots_[i].key == kEmpty) {
            slots_[i].key = key;
            ++size_;
        }
        const int64_t count = slots_[i].count += delta;
        if (count == 0) erase(i);
        return count;
    }
    // Ask the CPU for the slot where `key` starts its search, ahead of a `get` or `add`.
    void prefetch(uint64_t key) const {
        if (!slots_.empty()) __builtin_prefetch(&slots_[home(key)]);
    }
    size_t bytes() const { return slots_.size() * sizeof(Slot); }

  private:
    static constexpr uint64_t kEmpty = ~0ULL;
    struct Slot {
        uint64_t key = kEmpty;
        int64_t count = 0;
    };
    size_t home(uint64_t key) const { return mix64(key) & (slots_.size() - 1); }
    size_t next(size_t i) const { return (i + 1) & (slots_.size() - 1); }
    void erase(size_t hole) {  // backward-shift deletion: later keys of the run move up to stay reachable
        for (size_t i = next(hole);; i = next(i)) {
            if (slots_[i].key == kEmpty) break;
            const size_t h = home(slots_[i].key);
            if (((i - h) & (slots_.size() - 1)) >= ((i - hole) & (slots_.size() - 1))) {
                slots_[hole] = slots_[i];
                hole = i;
            }
        }
        slots_[hole] = Slot{};
        --size_;
    }
    void grow() {
        std::vector<Slot> old(slots_.empty() ? 1024 : slots_.size() * 2);
        old.swap(slots_);
        for (const Slot& s : old) {
            if (s.key == kEmpty) continue;
            size_t i = home(s.key);
            while (slots_[i].key != kEmpty) i = next(i);
            slots_[i] = s;
        }
    }
    std::vector<Slot> slots_;
    size_t size_ = 0;
};

// Word lists: each a varint byte count, then the varint gaps between its words (ascending). A list is
// named by where it starts (block << 32 | offset), which grows with every list made: the queue's tie-break.
class WordLists {
  public:
    static constexpr uint64_t kBlock = 1 << 20;

    static size_t coded_size(uint64_t v) {
        size_t n = 1;
        for (; v >= 0x80; v >>= 7) ++n;
        return n;
    }
    static void code(uint8_t*& p, uint64_t v) {
        for (; v >= 0x80; v >>= 7) *p++ = static_cast<uint8_t>(v | 0x80);
        *p++ = static_cast<uint8_t>(v);
    }
    static uint64_t decode(const uint8_t*& p) {
        uint64_t v = 0;
        for (int shift = 0;; shift += 7) {
            v |= static_cast<uint64_t>(*p & 0x7F) << shift;
            if (!(*p++ & 0x80)) return v;
        }
    }
    // Room for a list of `size` bytes of gaps; `where` is set to where they go. Returns the list's name.
    uint64_t allot(uint64_t size, uint8_t*& where) {
        const uint64_t total = coded_size(size) + size;
        if (blocks_.empty() || used_ + total > capacity_) {  // a new block (a longer list gets one of its own)
            capacity_ = std::max(kBlock, total);
            blocks_.emplace_back(new uint8_t[capacity_]);
            sizes_.push_back(capacity_);
            block_bytes_ += capacity_;
            used_ = 0;
        }
        const uint64_t name = static_cast<uint64_t>(blocks_.size() - 1) << 32 | used_;
        uint8_t* p = blocks_.back().get() + used_;
        code(p, size);
        where = p;
        used_ += total;
        stored_ += total;
        return name;
    }
    // A list of the words w[0] < w[1] < ... < w[n - 1].
    uint64_t add(const uint32_t* w, size_t n) {
        uint64_t size = 0;
        for (size_t i = 0; i < n; ++i) size += coded_size(i ? w[i] - w[i - 1] : w[i]);
        uint8_t* p;
        const uint64_t name = allot(size, p);
        for (size_t i = 0; i < n; ++i) code(p, i ? w[i] - w[i - 1] : w[i]);
        return name;
    }
    // Calls f(word) for every word of the list, in order.
    template <class F>
    void for_each(uint64_t name, F&& f) const {
        const uint8_t* p = at(name);
        const uint64_t size = decode(p);
        const uint8_t* end = p + size;
        for (uint64_t word = 0, first = 1; p < end; first = 0) {
            const uint64_t gap = decode(p);
            word = first ? gap : word + gap;
            f(static_cast<uint32_t>(word));
        }
    }
    void release(uint64_t name) {
        const uint8_t* p = at(name);
        const uint64_t size = decode(p);
        garbage_ += size + coded_size(size);
    }
    // Whether released lists make up half the pool (then `collect`).
    bool wasteful() const { return garbage_ >= 4 * kBlock && garbage_ * 2 >= stored_; }
    // Copy the lists still named in `names` (each updated in place) into new blocks, in order, freeing each
    // old block once passed.
    void collect(std::vector<uint64_t*> names) {
        std::sort(names.begin(), names.end(), [](const uint64_t* x, const uint64_t* y) { return *x < *y; });
        const size_t old_end = blocks_.size();
        used_ = capacity_ = stored_ = garbage_ = 0;  // the next list starts a new block
        size_t freed = first_old_;                    // the old blocks below this one are gone
        for (uint64_t* name : names) {
            for (; freed < (*name >> 32); ++freed) free_block(freed);
            const uint8_t* p = at(*name);
            const uint64_t size = decode(p);
            uint8_t* out;
            *name = allot(size, out);
            std::memcpy(out, p, size);
        }
        for (; freed < old_end; ++freed) free_block(freed);
        first_old_ = old_end;
    }
    size_t bytes() const { return block_bytes_; }

  private:
    const uint8_t* at(uint64_t name) const { return blocks_[name >> 32].get() + (name & 0xFFFFFFFF); }
    void free_block(size_t b) {
        if (!blocks_[b]) return;
        blocks_[b].reset();
        block_bytes_ -= sizes_[b];
    }
    std::vector<std::unique_ptr<uint8_t[]>> blocks_;  // freed ones are null; names keep their numbers
    std::vector<uint64_t> sizes_;
    size_t first_old_ = 0, block_bytes_ = 0;
    uint64_t used_ = 0, capacity_ = 0, stored_ = 0, garbage_ = 0;
};

// The merge queue: a max-heap of (count, key, list), the highest count first, then the smallest key, then
// the entry made first (its list's name is the lowest); lazy, as HF's (see the top of this file).
class MergeQueue {
  public:
    struct Entry {
        int64_t count;
        uint64_t key;
        uint64_t list;  // the entry's words (`WordLists`)
    };
    void push(const Entry& e) {
        heap_.push_back(e);
        std::push_heap(heap_.begin(), heap_.end(), Lower{});
    }
    void add(const Entry& e) { heap_.push_back(e); }  // many at once: then `heapify`
    void heapify() { std::make_heap(heap_.begin(), heap_.end(), Lower{}); }
    // The best entry whose count is current and at least `least`; false when there is none.
    bool pop_best(const PairCounts& counts, int64_t least, Entry& out) {
        while (!heap_.empty()) {
            std::pop_heap(heap_.begin(), heap_.end(), Lower{});
            Entry top = heap_.back();
            heap_.pop_back();
            const int64_t now = counts.get(top.key);
            if (now != top.count) {  // out of date: queued again with its current count
                top.count = now;
                push(top);
                continue;
            }
            if (now < least) return false;  // HF stops here: no other pair has a higher count
            out = top;
            return true;
        }
        return false;
    }
    // The list names of the entries (to update when the lists move).
    std::vector<uint64_t*> lists() {
        std::vector<uint64_t*> out;
        out.reserve(heap_.size());
        for (Entry& e : heap_) out.push_back(&e.list);
        return out;
    }
    size_t bytes() const { return heap_.capacity() * sizeof(Entry); }

  private:
    struct Lower {  // a < b: a is popped after b
        bool operator()(const Entry& a, const Entry& b) const {
            if (a.count != b.count) return a.count < b.count;
            if (a.key != b.key) return a.key > b.key;
            return a.list > b.list;
        }
    };
    std::vector<Entry> heap_;
};

}  // namespace llmlab
