// A bounded cache of word splits (raw word -> tokens with character spans, and how many characters the
// word stands for), as the Python path's memo (encoder.py) and the models' caches: the same answer, sooner.
//
// Threads: the shared cache is read under a shared lock; it is written only by a caller that holds it
// alone. Batch workers write to a cache of their own, merged into the shared one when the batch ends.
// One-character words (each CJK character is one under BERT's split) skip the hash: a table by code point,
// in pages of 256 allocated as they are used (a batch worker's cache would otherwise clear 256 KiB).
#pragma once

#include <algorithm>
#include <shared_mutex>

#include "common.h"

namespace llmlab {

class WordCache {
  public:
    static constexpr size_t kMaxWord = 24;  // longer words are not cached: they rarely repeat

    explicit WordCache(size_t capacity = 200000) : capacity_(capacity) {}

    struct Hit {
        const Token* tokens;
        uint32_t count;
        int32_t n;
    };
    // A word and its hash, computed once however many caches look the word up (a batch worker looks in two
    // and inserts in one), and only if one needs it.
    class Key {
      public:
        explicit Key(View word) : word_(word) {}
        Key(View word, uint64_t hash) : word_(word), hash_(hash), hashed_(true) {}
        View word() const { return word_; }
        uint64_t hash() const {
            if (!hashed_) {
                hash_ = hash_view(word_);
                hashed_ = true;
            }
            return hash_;
        }

      private:
        View word_;
        mutable uint64_t hash_ = 0;
        mutable bool hashed_ = false;
    };
    // The cached split of `word`; `tokens` stays valid until the next insert.
    bool find(const Key& word, Hit& hit) const {
        const int32_t i = index_of(word);
        if (i < 0) return false;
        const Entry& e = entries_[i];
        hit = {tokens_.data() + e.tokens, e.count, e.n};
        return true;
    }
    void insert(const Key& key, const Token* tokens, size_t count, int32_t n) {
        const View word = key.word();
        if (entries_.size() >= capacity_ || word.size() > kMaxWord) return;
        const int32_t i = static_cast<int32_t>(entries_.size());
        uint64_t h = 0;  // (a single character has no need of it)
        if (single(word)) {
            set_single(word[0], i);
        } else {
            if (2 * (words_ + 1) > slots_.size()) rehash(std::max<size_t>(16, 2 * slots_.size()));
            h = key.hash();
            slots_[free_slot(h)] = i;
            ++words_;
        }
        entries_.push_back({static_cast<uint32_t>(keys_.size()), static_cast<uint32_t>(word.size()),
                            static_cast<uint32_t>(tokens_.size()), static_cast<uint32_t>(count), n,
                            static_cast<uint32_t>(h), static_cast<uint32_t>(h >> 32)});
        keys_.append(word);
        tokens_.insert(tokens_.end(), tokens, tokens + count);
    }
    // Adds every entry of `other` (until full).
    void absorb(const WordCache& other) {
        const size_t room = std::min(other.entries_.size(), capacity_ - std::min(capacity_, entries_.size()));
        size_t cap = std::max<size_t>(16, slots_.size());  // grown once (still geometrically), not doubled
        while (cap < 2 * (words_ + room)) cap *= 2;           // on the way
        if (cap > slots_.size()) rehash(cap);
        grow(entries_, entries_.size() + room);
        grow(keys_, keys_.size() + other.keys_.size());
        grow(tokens_, tokens_.size() + other.tokens_.size());
        for (const Entry& e : other.entries_) {
            const Key key(other.key_of(e), e.hash());
            if (index_of(key) < 0) insert(key, other.tokens_.data() + e.tokens, e.count, e.n);
        }
    }
    bool full() const { return entries_.size() >= capacity_; }

    mutable std::shared_mutex mutex;

  private:
    template <class V>
    static void grow(V& values, size_t need) {  // room for `need`, at least doubling (no copy per batch)
        if (need > values.capacity()) values.reserve(std::max(need, 2 * values.capacity()));
    }
    static constexpr char32_t kSingles = 0x10000;  // one-character words below this go to `singles_`
    static constexpr size_t kPage = 256;
    static bool single(View word) { return word.size() == 1 && word[0] < kSingles; }
    int32_t single_index(char32_t c) const {
        if (pages_.empty() || pages_[c / kPage] < 0) return -1;
        return singles_[pages_[c / kPage] + c % kPage];
    }
    void set_single(char32_t c, int32_t i) {
        if (pages_.empty()) pages_.assign(kSingles / kPage, -1);
        int32_t& page = pages_[c / kPage];
        if (page < 0) {
            page = static_cast<int32_t>(singles_.size());
            singles_.resize(singles_.size() + kPage, -1);
        }
        singles_[page + c % kPage] = i;
    }
    struct Entry {
        uint32_t key, key_len, tokens, count;
        int32_t n;
        uint32_t low, check;  // the word's hash (none for a single character), kept: a rehash or a merge into
                              // another cache needs no hashing; with `check` most other words are told apart
                              // without reading them
        uint64_t hash() const { return static_cast<uint64_t>(check) << 32 | low; }
    };
    static uint32_t check_of(uint64_t h) { return static_cast<uint32_t>(h >> 32); }
    View key_of(const Entry& e) const { return View(keys_).substr(e.key, e.key_len); }
    int32_t index_of(const Key& key) const {
        const View word = key.word();
        if (single(word)) return single_index(word[0]);
        if (slots_.empty()) return -1;
        const uint64_t h = key.hash();
        for (size_t i = h & (slots_.size() - 1);; i = (i + 1) & (slots_.size() - 1)) {
            const int32_t e = slots_[i];
            if (e < 0) return -1;
            if (entries_[e].check == check_of(h) && same_text(key_of(entries_[e]), word)) return e;
        }
    }
    size_t free_slot(uint64_t h) const {  // linear probing from the hash
        size_t i = h & (slots_.size() - 1);
        while (slots_[i] >= 0) i = (i + 1) & (slots_.size() - 1);
        return i;
    }
    void rehash(size_t cap) {
        slots_.assign(cap, -1);
        for (size_t e = 0; e < entries_.size(); ++e) {
            if (!single(key_of(entries_[e]))) slots_[free_slot(entries_[e].hash())] = static_cast<int32_t>(e);
        }
    }

    // The index of words longer than one character: open addressing over entry numbers (-1: empty), at most
    // half full; 4 bytes a slot, the word itself is read from `keys_`.
    std::vector<int32_t> slots_;
    size_t words_ = 0;  // entries in `slots_`
    std::vector<int32_t> pages_;    // code point / kPage -> its page in `singles_`, or -1 (allocated at the first insert)
    std::vector<int32_t> singles_;  // pages of kPage: code point -> entry, or -1
    std::vector<Entry> entries_;
    Str keys_;
    std::vector<Token> tokens_;
    size_t capacity_;
};

}  // namespace llmlab
