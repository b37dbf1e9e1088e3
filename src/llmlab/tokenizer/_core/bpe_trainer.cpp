// BPE training: the words as arrays of symbol ids merged in place, the first pair count, and the merge loop.
// Reference: src/llmlab/tokenizer/bpe/trainer.py and words.py (HF tokenizers' trainer.rs and word.rs).
//
// A merge of (a, b) into n runs left to right through each word of its queue entry and reports, per
// occurrence, (left, a) -1, (left, n) +1, (b, right) -1, (n, right) +1 (HF's `Word::merge`), where `left` is
// already merged ("abab": the second ab has the left neighbour n) and `right` is not yet. A +1 is dropped
// unless the two tokens together are shorter than max_token_length; the symbol that starts such a pair is
// marked (the top bit), and the -1 that later takes that pair apart is dropped too (the Python reference
// counts both into its slot 0, which nothing reads).
//
// Memory, per distinct word: its symbols (2 bytes each while the vocabulary fits 15 bits, else 4; they only
// shrink), where it starts and its size (12 bytes); the counts are read from the caller's array. Per pair:
// see bpe_pairs.h.
#include "bpe_trainer.h"

#include <stdexcept>
#include <utility>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "bpe_changes.h"
#include "bpe_pairs.h"

namespace llmlab {
namespace {

constexpr size_t kAhead = 8;  // words prefetched ahead of the one being merged

// The first position p >= from where s holds (a, b), `mask` taken off each symbol (s[p] & mask == a and
// s[p + 1] & mask == b, p + 1 < n), or n when there is none. Compares 16 bytes of positions at a time: it reads
// up to kPad symbols past s + n, which the caller must own.
template <class Sym>
constexpr uint32_t kPad = 16 / sizeof(Sym);
template <class Sym>
uint32_t find_pair(const Sym* s, uint32_t from, uint32_t n, Sym mask, Sym a, Sym b) {
#if defined(__SSE2__)
    static_assert(sizeof(Sym) == 2 || sizeof(Sym) == 4, "16- or 32-bit symbols");
    constexpr uint32_t lanes = kPad<Sym>;
    auto splat = [](Sym x) { return sizeof(Sym) == 2 ? _mm_set1_epi16(static_cast<short>(x)) : _mm_set1_epi32(static_cast<int>(x)); };
    auto equal = [](__m128i x, __m128i y) { return sizeof(Sym) == 2 ? _mm_cmpeq_epi16(x, y) : _mm_cmpeq_epi32(x, y); };
    const __m128i m = splat(mask), va = splat(a), vb = splat(b);
    for (uint32_t p = from; p + 1 < n; p += lanes) {
        const __m128i x = _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + p)), m);
        const __m128i y = _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + p + 1)), m);
        uint32_t hits = static_cast<uint32_t>(_mm_movemask_epi8(_mm_and_si128(equal(x, va), equal(y, vb))));
        if (n - 1 - p < lanes) hits &= (1u << (sizeof(Sym) * (n - 1 - p))) - 1;  // pairs that end inside the word
        if (hits) return p + static_cast<uint32_t>(__builtin_ctz(hits)) / sizeof(Sym);
    }
    return n;
#else
    for (uint32_t p = from; p + 1 < n; ++p)
        if ((s[p] & mask) == a && (s[p + 1] & mask) == b) return p;
    return n;
#endif
}

// HF's max_token_length rule: a pair made with the new token is counted only when the two are shorter.
struct LengthRule {
    int64_t max = -1;             // -1: no limit
    std::vector<int64_t> length;  // characters per token, by id (a new token's once, when first made)
    bool counted(uint32_t other, uint32_t made) const { return max < 0 || length[other] + length[made] < max; }
};

// Every distinct word's symbols, one word after the other; a merge rewrites a word in place.
template <class Sym>
struct Words {
    static constexpr Sym kUncounted = Sym(1) << (8 * sizeof(Sym) - 1);  // the pair this symbol starts is not counted
    static constexpr Sym kSymbol = static_cast<Sym>(~kUncounted);

    std::vector<Sym> sym;
    std::vector<uint64_t> start;  // (W,) where each word's symbols start
    std::vector<uint32_t> size;   // (W,) how many symbols each word has now
    const int64_t* count;         // (W,) each word's count (the caller's array)

    explicit Words(const BpeWords& in) : start(in.n_words), size(in.n_words), count(in.counts) {
        auto id_of = [&](int64_t i, uint32_t code) { return code < in.n_ids ? (i ? in.rest_id : in.first_id)[code] : -1; };
        size_t kept = 0;
        for (size_t w = 0, c = 0; w < in.n_words; ++w)  // first the number of symbols: `sym` is allocated once
            for (int64_t i = 0; i < in.lengths[w]; ++i, ++c) kept += id_of(i, in.codes[c]) >= 0;
        sym.reserve(kept + kPad<Sym>);
        for (size_t w = 0, c = 0; w < in.n_words; ++w) {
            start[w] = sym.size();
            for (int64_t i = 0; i < in.lengths[w]; ++i, ++c) {
                const int32_t id = id_of(i, in.codes[c]);
                if (id >= 0) sym.push_back(static_cast<Sym>(id));
            }
            if (sym.size() - start[w] > UINT32_MAX) throw std::length_error("BPE trainer: a word of over 2^32 symbols");
            size[w] = static_cast<uint32_t>(sym.size() - start[w]);
        }
        sym.resize(kept + kPad<Sym>);  // what `find_pair` reads past the last word
    }

    size_t bytes() const { return sym.capacity() * sizeof(Sym) + start.capacity() * 8 + size.capacity() * 4; }

    // Ask the CPU for what merging word w reads, ahead of the merge: first where it starts (`prefetch_start`),
    // then, once that has arrived, its first symbols, size and count.
    void prefetch_start(uint32_t w) const { __builtin_prefetch(&start[w]); }
    void prefetch(uint32_t w) const {
        __builtin_prefetch(sym.data() + start[w]);
        __builtin_prefetch(&size[w]);
        __builtin_prefetch(count + w);
    }

    // Merge (a, b) into `made` throughout word w (HF's Word::merge), reporting the changes to `out`.
    void merge(uint32_t w, uint32_t a, uint32_t b, uint32_t made, const LengthRule& rule, MergeChanges& out) {
        Sym* s = sym.data() + start[w];
        const uint32_t n = size[w];
        const Sym pa = static_cast<Sym>(a), pb = static_cast<Sym>(b);
        uint32_t r = find_pair<Sym>(s, 0, n, kSymbol, pa, pb);  // read position: the next occurrence
        uint32_t o = r;  // write position: the symbols before the first occurrence stay where they are
        const int64_t k = count[w];
        while (r < n) {
            if (o > 0) {  // the left neighbour: already written, maybe merged just before
                const uint32_t left = s[o - 1] & kSymbol;
                if (!(s[o - 1] & kUncounted)) out.lose(left, a, k);
                const bool counted = rule.counted(left, made);
                s[o - 1] = static_cast<Sym>(left | (counted ? 0 : kUncounted));
                if (counted) out.make(left, made, k, w);
            }
            bool counted = true;
            if (r + 2 < n) {  // the right neighbour: not merged yet
                const uint32_t right = s[r + 2] & kSymbol;
                if (!(s[r + 1] & kUncounted)) out.lose(b, right, k);
                counted = rule.counted(right, made);
                if (counted) out.make(made, right, k, w);
            }
            s[o++] = static_cast<Sym>(made | (counted ? 0 : kUncounted));
            const uint32_t next = find_pair<Sym>(s, r + 2, n, kSymbol, pa, pb);
            for (r += 2; r < next;) s[o++] = s[r++];  // the symbols up to the next occurrence move left
        }
        size[w] = o;
    }
};

// The first count: every adjacent pair, weighted by word counts, queued with the words that hold it (in key
// order, as the Python reference numbers its slots). Two passes over the words, so that each pair's list is
// written straight into the pool: the first counts the pairs and sizes their lists, the second writes them.
// `ids`: the symbols are below it; when they are few (byte level: 257), pairs are found by (left, right) in a
// table rather than hashed.
template <class Sym>
void count_pairs(const Words<Sym>& words, size_t ids, PairCounts& counts, WordLists& lists, MergeQueue& queue) {
    struct Pair {
        uint64_t key;
        int64_t count = 0;
        uint64_t bytes = 0;          // the size of its list
        uint32_t last = UINT32_MAX;  // the last word seen with the pair
        uint8_t* out = nullptr;      // where its list's next gap goes
    };
    std::vector<Pair> pairs;
    constexpr size_t kDenseIds = 1024;
    std::vector<uint32_t> dense(ids <= kDenseIds ? ids * ids : 0);  // (left, right) -> position in `pairs`, + 1
    PairCounts index;                                                // or key -> the same
    auto position = [&](uint32_t left, uint32_t right) -> uint32_t {
        return static_cast<uint32_t>(dense.empty() ? index.get(pair_key(left, right)) : dense[left * ids + right]);
    };
    auto each_pair = [&](auto&& f) {
        for (uint32_t w = 0; w < words.size.size(); ++w) {
            const Sym* s = words.sym.data() + words.start[w];
            for (uint32_t i = 0; i + 1 < words.size[w]; ++i) f(w, s[i], s[i + 1]);
        }
    };
    each_pair([&](uint32_t w, uint32_t left, uint32_t right) {
        uint32_t i = position(left, right);
        if (i == 0) {
            pairs.push_back({pair_key(left, right)});
            i = static_cast<uint32_t>(pairs.size());
            if (dense.empty())
                index.add(pair_key(left, right), i);
            else
                dense[left * ids + right] = i;
        }
        Pair& p = pairs[i - 1];
        p.count += words.count[w];
        if (p.last == w) return;
        p.bytes += WordLists::coded_size(p.last == UINT32_MAX ? w : w - p.last);
        p.last = w;
    });
    std::vector<uint32_t> order(pairs.size());
    for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](uint32_t x, uint32_t y) { return pairs[x].key < pairs[y].key; });
    for (uint32_t i : order) {
        Pair& p = pairs[i];
        const uint64_t list = lists.allot(p.bytes, p.out);
        p.last = UINT32_MAX;
        if (p.count <= 0) continue;
        queue.add({p.count, p.key, list});
        counts.add(p.key, p.count);
    }
    queue.heapify();
    each_pair([&](uint32_t w, uint32_t left, uint32_t right) {
        Pair& p = pairs[position(left, right) - 1];
        if (p.last == w) return;
        WordLists::code(p.out, p.last == UINT32_MAX ? w : w - p.last);
        p.last = w;
    });
}

template <class Sym>
BpeMerges learn(const BpeWords& in, std::vector<Str>& tokens, const BpeOptions& options,
                const std::function<void(size_t, size_t)>& progress) {
    BpeMerges result;
    StrMap vocab;
    for (size_t i = 0; i < tokens.size(); ++i) vocab.put(tokens[i], static_cast<int32_t>(i));
    const size_t vocab_size = static_cast<size_t>(std::max<int64_t>(options.vocab_size, 0));
    const size_t wanted = vocab_size > tokens.size() ? vocab_size - tokens.size() : 0;
    LengthRule rule{options.max_token_length, {}};
    if (rule.max >= 0) rule.length.assign(std::max(tokens.size(), vocab_size) + 1, 1);

    Words<Sym> words(in);
    PairCounts counts;
    WordLists lists;
    MergeQueue queue;
    count_pairs(words, tokens.size(), counts, lists, queue);
    MergeChanges changes;
    std::vector<uint32_t> batch;  // the words of the entry being merged
    auto measure = [&] {
        const size_t bytes = words.bytes() + counts.bytes() + lists.bytes() + queue.bytes() + changes.bytes();
        result.peak_bytes = std::max(result.peak_bytes, bytes);
    };
    measure();

    const int64_t least = std::max<int64_t>(1, options.min_frequency);
    MergeQueue::Entry top;
    while (tokens.size() < vocab_size && queue.pop_best(counts, least, top)) {
        const uint32_t a = static_cast<uint32_t>(top.key >> kIdBits), b = static_cast<uint32_t>(top.key & kIdMask);
        View right = tokens[b];
        if (!options.prefix.empty() && right.substr(0, options.prefix.size()) == options.prefix)
            right.remove_prefix(options.prefix.size());
        Str joined = tokens[a];
        joined += right;
        int32_t id = vocab.find(joined);
        if (id < 0) {  // a new token (else an existing one is built again, and the vocabulary does not grow)
            id = static_cast<int32_t>(tokens.size());
            vocab.put(joined, id);
            tokens.push_back(std::move(joined));
            if (rule.max >= 0) rule.length[id] = rule.length[a] + rule.length[b];
        }
        result.merges.push_back(top.key);

        changes.start(b, static_cast<uint32_t>(id), tokens.size());
        batch.clear();
        lists.for_each(top.list, [&](uint32_t w) { batch.push_back(w); });
        for (size_t i = 0; i < batch.size(); ++i) {  // the words lie anywhere: fetch the next ones' early
            if (i + 2 * kAhead < batch.size()) words.prefetch_start(batch[i + 2 * kAhead]);
            if (i + kAhead < batch.size()) words.prefetch(batch[i + kAhead]);
            words.merge(batch[i], a, b, static_cast<uint32_t>(id), rule, changes);
        }
        lists.release(top.list);
        measure();
        changes.flush(counts, [&](uint64_t key, int64_t count, const uint32_t* made, uint32_t n) {
            if (count > 0) queue.push({count, key, lists.add(made, n)});  // queued only while it occurs, as HF
        });
        if (lists.wasteful()) lists.collect(queue.lists());
        if (progress) progress(result.merges.size(), wanted);
    }
    measure();
    return result;
}

}  // namespace

void bpe_char_counts(const BpeWords& in, std::vector<uint32_t>& chars, std::vector<double>& weights,
                     std::vector<int64_t>& later) {
    std::vector<double> sum;
    std::vector<int64_t> first_later;
    std::vector<uint8_t> seen;  // a character of words counted 0 is still in the alphabet
    int64_t c = 0;
    for (size_t w = 0; w < in.n_words; ++w)
        for (int64_t i = 0; i < in.lengths[w]; ++i, ++c) {
            const uint32_t code = in.codes[c];
            if (code >= sum.size()) {
                sum.resize(code + size_t{1}), seen.resize(code + size_t{1}), first_later.resize(code + size_t{1}, -1);
            }
            sum[code] += static_cast<double>(in.counts[w]);
            seen[code] = 1;
            if (i > 0 && first_later[code] < 0) first_later[code] = c;
        }
    chars.clear(), weights.clear(), later.clear();
    for (uint32_t code = 0; code < sum.size(); ++code)
        if (seen[code]) chars.push_back(code), weights.push_back(sum[code]), later.push_back(first_later[code]);
}

BpeMerges bpe_learn_merges(const BpeWords& in, std::vector<Str> tokens, const BpeOptions& options,
                           const std::function<void(size_t, size_t)>& progress) {
    const size_t given = tokens.size();
    const size_t ids = std::max<size_t>(given, static_cast<size_t>(std::max<int64_t>(options.vocab_size, 0)));
    if (ids > kIdMask) throw std::length_error("BPE trainer: more than 2^21 token ids");
    BpeMerges result = ids <= (1u << 15) ? learn<uint16_t>(in, tokens, options, progress)
                                         : learn<uint32_t>(in, tokens, options, progress);
    result.new_tokens.assign(std::make_move_iterator(tokens.begin() + given), std::make_move_iterator(tokens.end()));
    return result;
}

}  // namespace llmlab
