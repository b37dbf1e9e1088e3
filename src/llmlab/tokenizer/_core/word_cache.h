// A bounded cache of word splits (raw word -> tokens with character spans, and how many characters the
// word stands for), as the Python path's memo (encoder.py) and the models' caches: the same answer, sooner.
//
// Threads: lookups take no lock of their own and may run beside inserts. A thread that holds `mutex` alone
// inserts as it likes (the arrays grow); threads that hold it shared (a batch's workers) insert together into
// the room `reserve` made before they started, each word once: a new word becomes visible to every worker as
// soon as one has split it, and nothing is merged after the batch. A word two workers split at the same time
// is kept once (the other record stays unused). When the room is used up, new words are not cached until the
// next `reserve` or lone insert.
// Storage: each word is one record (its characters, then its tokens) in an array of bytes that only grows
// (`Pages`: pages never written cost no memory, growing copies nothing); a record that fits a cache line lies
// in one. Records and a count of entries are claimed through atomic counters; a thread inserting beside others
// claims blocks of them into its `Share` (the counters' cache line would otherwise pass between the cores at
// every new word). A record is published by one compare-and-swap of an index cell (open addressing, at most
// half as many entries as cells after a lone insert, three quarters while shared) that holds the word's hash
// beside the record's place: a probe tells most other words apart without reading their records, a rehash
// reads no record, and a hit reads two cache lines (cell, record), where entry, key and tokens apart took
// four: a line that the other worker has just written costs a transfer between the cores. (Cachegrind, a cold
// pass of 1-thread ids batches over gutenberg_en valid.txt: 18-23% fewer D1 misses than that layout.)
// One-character words below U+10000 (each CJK character is one under BERT's split) skip the hash: a table by
// code point, of which only the pages of the scripts met are ever touched. Where such a word is one token
// spanning it (nearly always), the token's id is written in the table's cell itself: a lookup reads one cache
// line instead of two (cell, record). A model
// that knows such splits without tokenizing (WordPiece: its one-character tokens) fills them in first.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <shared_mutex>
#include <utility>
#include <vector>

#include "common.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace llmlab {

namespace cache_detail {

// A zeroed array of trivially copyable T in pages straight from the kernel (Linux: mmap): pages never written
// cost no memory, and growing moves page tables, not bytes (mremap), so it grows 4 times at once. (Through the
// heap, a cache that grows while a batch's helpers wait would copy its arrays, and zero or touch the room made
// for the batch.) Not for the index: rebuilt whole at each growth, it is cheaper in recycled heap memory than
// in fresh pages (a page fault each) unmapped after (a TLB flush on the other cores): in fresh pages, the
// rehashes of cold batches of English lines took three times as long.
template <class T>
struct Pages {
    T* data = nullptr;
    size_t size = 0;  // elements allocated

    Pages() = default;
    ~Pages() { release(); }
    Pages(const Pages&) = delete;
    Pages& operator=(const Pages&) = delete;

    void grow(size_t need) {  // to at least `need` elements (at least 4 times as many), keeping the contents
        if (need <= size) return;
        const size_t to = std::max(need, 4 * size);
        const size_t bytes = std::max((to * sizeof(T) + kPage - 1) / kPage * kPage, kFirst);
#if defined(__linux__)
        void* p = data ? mremap(data, size * sizeof(T), bytes, MREMAP_MAYMOVE)
                       : mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw std::bad_alloc();
#else
        void* p = std::realloc(data, bytes);
        if (!p) throw std::bad_alloc();
        std::memset(static_cast<char*>(p) + size * sizeof(T), 0, bytes - size * sizeof(T));
#endif
        data = static_cast<T*>(p);
        size = bytes / sizeof(T);
    }

  private:
    static constexpr size_t kPage = 4096;
    static constexpr size_t kFirst = size_t{16} << 20;  // at least this much address space (not memory): a
                                                        // cache rarely grows past it (moving pages in use
                                                        // flushes the TLB of every core running the process,
                                                        // the batch's helpers included: ~90 us here)
    void release() {
#if defined(__linux__)
        if (data) munmap(data, (size * sizeof(T) + kPage - 1) / kPage * kPage);
#else
        std::free(data);
#endif
    }
};

// Index cells (0: empty) read and written with the compiler's atomic builtins (on plain reads and writes the
// compiler could tear or reorder them).
template <class Cell>
Cell load(const Cell& cell) {
    return __atomic_load_n(&cell, __ATOMIC_ACQUIRE);
}
// Writes `value` into an empty cell; else false, and `seen` is what the cell holds.
template <class Cell>
bool publish(Cell& cell, Cell value, Cell& seen) {
    seen = 0;
    return __atomic_compare_exchange_n(&cell, &seen, value, false, __ATOMIC_RELEASE, __ATOMIC_ACQUIRE);
}

// Units [at, end) of an array, claimed by one thread.
struct Range {
    size_t at = 0, end = 0;
};

// `n` units from `range`; when it runs short, a new range of at least `block` units is claimed from the
// array's counter `used` (threads claim together), up to `limit`. False if none are left.
inline bool take(std::atomic<size_t>& used, size_t limit, size_t n, size_t block, Range& range, size_t& at) {
    if (range.end - range.at < n) {
        const size_t size = std::max(n, block);
        size_t u = used.load(std::memory_order_relaxed);
        do {
            if (u + size > limit) return false;
        } while (!used.compare_exchange_weak(u, u + size, std::memory_order_relaxed));
        range = {u, u + size};
    }
    at = range.at;
    range.at += n;
    return true;
}

// Zeroed memory from calloc, which leaves the zeroing to the kernel where the memory is fresh pages (a large
// block, mapped for it): a vector of n cells is then zero without touching its pages, which fault in as cells are
// written, by whichever thread writes them (beside its work, in a batch). Cells made without a value stay as
// calloc made them (zero).
template <class T>
struct Calloc {
    using value_type = T;
    Calloc() = default;
    template <class U>
    Calloc(const Calloc<U>&) {}
    T* allocate(size_t n) {
        void* p = std::calloc(n, sizeof(T));
        if (!p) throw std::bad_alloc();
        return static_cast<T*>(p);
    }
    void deallocate(T* p, size_t) noexcept { std::free(p); }
    template <class U, class... Args>
    void construct(U* p, Args&&... args) {
        if constexpr (sizeof...(Args) > 0) ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
    }
    bool operator==(const Calloc&) const { return true; }
    bool operator!=(const Calloc&) const { return false; }
};
using Cells = std::vector<uint64_t, Calloc<uint64_t>>;

}  // namespace cache_detail

class WordCache {
  public:
    static constexpr size_t kMaxWord = 24;  // longer words are not cached: they rarely repeat

    explicit WordCache(size_t capacity = 200000) : capacity_(capacity) {}
    WordCache(const WordCache&) = delete;
    WordCache& operator=(const WordCache&) = delete;

    struct Hit {
        const Token* tokens;
        uint32_t count;
        int32_t n;
        Token one;  // a one-character word's token, when `tokens` points here (so a Hit is not copied)
    };
    // A word and its hash, computed once however often the word is looked up, and only if one needs it.
    class Key {
      public:
        explicit Key(View word) : word_(word) {}
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

    // The cached split of `word`; `tokens` stays valid until the cache grows (a lone insert or `reserve`).
    bool find(const Key& word, Hit& hit) const {
        const uint32_t e = number_of(word);
        if (!e) return false;
        if (e & kInline) {
            hit.one = {static_cast<int32_t>(e & ~kInline), 0, 1};
            hit.tokens = &hit.one;
            hit.count = 1;
            hit.n = 1;
            return true;
        }
        const Record& r = record(e);
        hit = {r.tokens(), r.count, r.n};
        return true;
    }

    // A thread's part of the room made for threads inserting together: blocks of the counts and bytes,
    // claimed as needed. (Parts claimed and not used stay unused.)
    struct Share {
        cache_detail::Range entries, bytes;
    };

    // Caches `word`'s split, unless the word is longer than kMaxWord or the cache is full. `share` null: the
    // caller holds `mutex` alone and the arrays grow as needed; else it holds it shared and takes its part of
    // the room made by `reserve` through `share` (none left: the word is not cached).
    void insert(const Key& key, const Token* tokens, size_t count, int32_t n, Share* share) {
        const View word = key.word();
        if (word.size() > kMaxWord) return;
        if (single(word) && count == 1 && n == 1 && tokens[0].id >= 0 && tokens[0].start == 0 && tokens[0].end == 1) {
            if (!share) singles_.grow(kSingles);  // (shared: `reserve` made it)
            if (singles_.data) publish_single(word[0], tokens[0].id);
            return;
        }
        const size_t size = Record::bytes(word.size(), count);
        if (!share) make_room(1, size);
        Share& from = share ? *share : alone_;  // (alone: in blocks too, so that records lie as they do shared)
        const size_t entry_limit = std::min(capacity_, 3 * (mask_ + 1) / 4);
        size_t e, at;
        if (!singles_.data || !cache_detail::take(entry_used_, entry_limit, 1, kBlock, from.entries, e) ||
            !claim(size, from.bytes, at))
            return;  // (no room was made; a claimed entry stays unused)
        Record* r = new (bytes_.data + at) Record{static_cast<uint16_t>(word.size()), static_cast<uint16_t>(count), n};
        std::uninitialized_copy(word.begin(), word.end(), reinterpret_cast<char32_t*>(r + 1));
        std::uninitialized_copy(tokens, tokens + count, const_cast<Token*>(r->tokens()));
        const uint32_t number = static_cast<uint32_t>(at) + 1;
        if (single(word)) {  // (lost to a worker that cached the same character: that record is the one)
            uint32_t seen;
            cache_detail::publish(singles_.data[word[0]], number, seen);
            return;
        }
        const uint64_t h = key.hash();
        const uint64_t cell = (h & 0xffffffffu) << 32 | number;
        for (size_t i = h & mask_;; i = (i + 1) & mask_) {
            uint64_t seen;
            if (cache_detail::publish(slots_[i], cell, seen)) return;
            if (is(seen, word, h)) return;  // another worker cached it meanwhile
        }
    }

    // (Alone.) Caches the one-character word `c` (below U+10000; others are ignored) as the one token `id`
    // spanning it (see Model::single_character_tokens).
    void insert_single(char32_t c, int32_t id) {
        if (c >= kSingles || id < 0) return;
        singles_.grow(kSingles);
        publish_single(c, id);
    }

    // Before threads insert together: room for `words` new words (8 characters and 4 tokens each, on
    // average). The caller holds `mutex` alone. Where the next reserve of as many words will rebuild the index,
    // its new index is wanted from one of the threads (make_spare); not at the first (a tokenizer may encode
    // one batch: the Chinese lines of the bench are one, whose spare went unused).
    void reserve(size_t words) {
        const size_t used = entry_used_.load(std::memory_order_relaxed);
        make_room(words, words * (Record::bytes(8, 4) + kLine / 2));
        const size_t next = used + 2 * words + kBlock;
        spare_wanted_ = used && 2 * next > slots_.size() && next < capacity_ ? 2 * slots_.size() : 0;
        if (spare_.size() != spare_wanted_) cache_detail::Cells().swap(spare_);  // (not kept unwanted)
    }
    // The index the next rebuild wants, zeroed now by one of the threads inserting together (holding `mutex`
    // shared), while the others go on: a rebuild's new pages (a fault each: 512 KiB took ~250 of the ~320 us of
    // rebuilding the index to 64k cells, serial while the helpers wait) are touched beside their work.
    void make_spare() noexcept {
        if (!spare_wanted_ || spare_.size() == spare_wanted_) return;
        try {
            spare_.assign(spare_wanted_, 0);
        } catch (const std::bad_alloc&) {  // (the rebuild will make its own)
        }
    }

    // Held alone to insert alone or to reserve, shared by threads inserting together. On a cache line of its
    // own: a thread taking it would otherwise evict what every lookup reads from the other cores' caches.
    struct alignas(64) Mutex : std::shared_mutex {};
    mutable Mutex mutex;

  private:
    static constexpr char32_t kSingles = 0x10000;  // one-character words below this go to `singles_`
    static constexpr size_t kBlock = 16;           // entries a Share claims at once
    static constexpr size_t kLine = 64;            // bytes of a cache line
    static constexpr size_t kBlockBytes = 16 * kLine;  // bytes a Share claims at once (at least)
    static bool single(View word) { return word.size() == 1 && word[0] < kSingles; }
    static constexpr uint32_t kInline = 0x80000000u;  // a singles cell holding a token id (else a record + 1)
    void publish_single(char32_t c, int32_t id) {  // (a cell already set keeps its value: the same id)
        uint32_t seen;
        cache_detail::publish(singles_.data[c], kInline | static_cast<uint32_t>(id), seen);
    }

    // A cached word: this header, then its characters, then its tokens, in one piece of `bytes_` (a hit reads
    // one or two cache lines, not one each for an entry, its key and its tokens).
    struct Record {
        uint16_t length, count;
        int32_t n;
        const char32_t* key() const { return reinterpret_cast<const char32_t*>(this + 1); }
        const Token* tokens() const { return reinterpret_cast<const Token*>(key() + length); }
        static size_t bytes(size_t length, size_t count) {
            return sizeof(Record) + length * sizeof(char32_t) + count * sizeof(Token);
        }
    };
    static_assert(sizeof(Record) % alignof(Token) == 0 && alignof(Record) >= alignof(Token));
    const Record& record(uint32_t number) const {  // (number: the record's byte + 1)
        return *reinterpret_cast<const Record*>(bytes_.data + number - 1);
    }
    // Whether index cell `cell` holds `word` (hash `h`): the hash first, so that most other words are told
    // apart without reading their records.
    bool is(uint64_t cell, View word, uint64_t h) const {
        if (cell >> 32 != (h & 0xffffffffu)) return false;
        const Record& r = record(static_cast<uint32_t>(cell));
        return same_text(View(r.key(), r.length), word);
    }

    // `size` bytes for a record at `at`, from `range`, else from a new block of `bytes_` (threads claim
    // together). A record that fits a cache line does not straddle two (a hit then reads one).
    bool claim(size_t size, cache_detail::Range& range, size_t& at) {
        const size_t line_end = (range.at / kLine + 1) * kLine;
        if (size <= kLine && range.at + size > line_end) range.at = std::min(line_end, range.end);
        const size_t whole = (size + kLine - 1) / kLine * kLine;  // (blocks stay aligned to lines)
        return cache_detail::take(byte_used_, std::min(bytes_.size, size_t{kInline} - 1), size,
                                  std::max(whole, kBlockBytes), range, at);
    }

    uint32_t number_of(const Key& key) const {  // the word's record + 1, or 0 (a single: or kInline | its id)
        const View word = key.word();
        if (single(word)) return singles_.data ? cache_detail::load(singles_.data[word[0]]) : 0;
        if (slots_.empty()) return 0;
        const uint64_t h = key.hash();
        for (size_t i = h & mask_;; i = (i + 1) & mask_) {
            const uint64_t cell = cache_detail::load(slots_[i]);
            if (!cell) return 0;
            if (is(cell, word, h)) return static_cast<uint32_t>(cell);
        }
    }

    // (Alone.) Room for `words` more entries in `size` more bytes (and a block of each), the index with at most
    // twice as many cells as entries (used or not: each is in one cell at most).
    void make_room(size_t words, size_t size) {
        const size_t need = std::min(entry_used_.load(std::memory_order_relaxed) + words + kBlock, capacity_);
        bytes_.grow(byte_used_.load(std::memory_order_relaxed) + size + kBlockBytes);
        if (slots_.empty() || 2 * need > slots_.size()) {
            size_t cells = 16;
            while (cells < 2 * need) cells *= 2;
            rehash(cells);
        }
        singles_.grow(kSingles);  // (once; untouched pages cost nothing)
    }

    void rehash(size_t size) {  // (alone) the index with `size` cells, from the old one's
        cache_detail::Cells old;
        if (spare_.size() == size)
            old.swap(spare_);  // (zeroed: see make_spare)
        else
            old = cache_detail::Cells(size);  // (the first index: its pages fault in as the batch's words come)
        slots_.swap(old);
        mask_ = size - 1;
        for (uint64_t cell : old) {
            if (!cell) continue;
            size_t i = (cell >> 32) & mask_;
            while (slots_[i]) i = (i + 1) & mask_;
            slots_[i] = cell;
        }
    }

    // Index cells of words longer than one character: 0 is empty, else the low half of the word's hash
    // (above: where the word's probe starts, read again by a rehash, and what tells most other words apart)
    // and its record's byte + 1 (below).
    cache_detail::Cells slots_;
    size_t mask_ = 0;                        // its size - 1
    cache_detail::Cells spare_;              // zeroed cells for the next rebuild (see make_spare)
    size_t spare_wanted_ = 0;                // its size, or 0: none wanted
    cache_detail::Pages<uint32_t> singles_;  // by code point below kSingles: a cell (see kInline)
    cache_detail::Pages<unsigned char> bytes_;  // the records
    Share alone_;                               // (alone) the room of lone inserts
    // Claimed so far (threads inserting together change them: a cache line apart from what lookups read).
    alignas(64) std::atomic<size_t> entry_used_{0};
    std::atomic<size_t> byte_used_{0};
    alignas(64) size_t capacity_;  // most entries
};

}  // namespace llmlab
