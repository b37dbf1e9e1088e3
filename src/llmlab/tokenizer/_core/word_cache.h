// A bounded cache of word splits (raw word -> tokens with character spans, and how many characters the
// word stands for), as the Python path's memo (encoder.py) and the models' caches: the same answer, sooner.
//
// Threads: the shared cache is read under a shared lock; it is written only by a caller that holds it
// alone. Batch workers write to a cache of their own, merged into the shared one when the batch ends.
#pragma once

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
        const int32_t i = index_.find(word);
        if (i < 0) return false;
        const Entry& e = entries_[i];
        hit = {tokens_.data() + e.tokens, e.count, e.n};
        return true;
    }
    void insert(View word, const Token* tokens, size_t count, int32_t n) {
        if (entries_.size() >= capacity_ || word.size() > kMaxWord) return;
        index_.put(word, static_cast<int32_t>(entries_.size()));
        entries_.push_back({static_cast<uint32_t>(keys_.size()), static_cast<uint32_t>(word.size()),
                            static_cast<uint32_t>(tokens_.size()), static_cast<uint32_t>(count), n});
        keys_.append(word);
        tokens_.insert(tokens_.end(), tokens, tokens + count);
    }
    // Adds every entry of `other` (until full).
    void absorb(const WordCache& other) {
        for (const Entry& e : other.entries_) {
            View key = View(other.keys_).substr(e.key, e.key_len);
            if (index_.find(key) < 0) insert(key, other.tokens_.data() + e.tokens, e.count, e.n);
        }
    }
    bool full() const { return entries_.size() >= capacity_; }

    mutable std::shared_mutex mutex;

  private:
    struct Entry {
        uint32_t key, key_len, tokens, count;
        int32_t n;
    };
    StrMap index_;
    std::vector<Entry> entries_;
    Str keys_;
    std::vector<Token> tokens_;
    size_t capacity_;
};

}  // namespace llmlab
