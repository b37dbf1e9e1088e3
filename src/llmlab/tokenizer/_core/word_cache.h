// A bounded cache of word splits (raw word -> tokens with character spans, and how many characters the
// word stands for), as the Python path's memo (encoder.py) and the models' caches: the same answer, sooner.
//
// Threads: the shared cache is read under a shared lock; it is written only by a caller that holds it
// alone. Batch workers write to a cache of their own, merged into the shared one when the batch ends.
// One-character words (each CJK character is one under BERT's split) skip the hash: a table by code point.
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
    // The cached split of `word`; `tokens` stays valid until the next insert.
    bool find(View word, Hit& hit) const {
        const int32_t i = index_of(word);
        if (i < 0) return false;
        const Entry& e = entries_[i];
        hit = {tokens_.data() + e.tokens, e.count, e.n};
        return true;
    }
    void insert(View word, const Token* tokens, size_t count, int32_t n) {
        if (entries_.size() >= capacity_ || word.size() > kMaxWord) return;
        const int32_t i = static_cast<int32_t>(entries_.size());
        if (single(word)) {
            if (singles_.empty()) singles_.assign(kSingles, -1);
            singles_[word[0]] = i;
        } else {
            index_.put(word, i);
        }
        entries_.push_back({static_cast<uint32_t>(keys_.size()), static_cast<uint32_t>(word.size()),
                            static_cast<uint32_t>(tokens_.size()), static_cast<uint32_t>(count), n});
        keys_.append(word);
        tokens_.insert(tokens_.end(), tokens, tokens + count);
    }
    // Adds every entry of `other` (until full).
    void absorb(const WordCache& other) {
        const size_t room = std::min(other.entries_.size(), capacity_ - std::min(capacity_, entries_.size()));
        index_.reserve(index_.size() + room);  // grown once (still geometrically), not doubled on the way
        grow(entries_, entries_.size() + room);
        grow(keys_, keys_.size() + other.keys_.size());
        grow(tokens_, tokens_.size() + other.tokens_.size());
        for (const Entry& e : other.entries_) {
            View key = View(other.keys_).substr(e.key, e.key_len);
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
    static bool single(View word) { return word.size() == 1 && word[0] < kSingles; }
    int32_t index_of(View word) const {
        if (!single(word)) return index_.find(word);
        return singles_.empty() ? -1 : singles_[word[0]];
    }

    struct Entry {
        uint32_t key, key_len, tokens, count;
        int32_t n;
    };
    StrMap index_;
    std::vector<int32_t> singles_;  // code point -> entry, or -1 (allocated at the first insert)
    std::vector<Entry> entries_;
    Str keys_;
    std::vector<Token> tokens_;
    size_t capacity_;
};

}  // namespace llmlab
