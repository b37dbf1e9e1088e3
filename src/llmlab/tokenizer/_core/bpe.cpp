// Byte-pair encoding model; see bpe.h. Reference: src/llmlab/tokenizer/bpe/model.py.
#include "bpe.h"

#include <algorithm>


namespace llmlab {

namespace {

// The character whose UTF-8 bytes `key` holds, little-endian (the keys of bpe/chars.py `char_pieces`).
char32_t char_of_utf8(uint32_t key) {
    const uint32_t lead = key & 0xFF;
    const int len = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
    char32_t c = lead & (0xFF >> (len == 1 ? 1 : len + 1));
    for (int i = 1; i < len; ++i) c = (c << 6) | ((key >> (8 * i)) & 0x3F);
    return c;
}

// How many bytes UTF-8 spells `c` with.
size_t utf8_length(char32_t c) { return c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4; }

}  // namespace

Bpe::Bpe(const BpeConfig& config) : config_(config) {
    char_ids_.assign(0x10000, -1);
    for (const auto& [token, id] : config.vocab) {
        vocab_.put(token, id);
        if (token.size() == 1 && token[0] < 0x10000) char_ids_[token[0]] = id;
    }
    ranks_.reserve(config.merges.size());
    for (size_t rank = 0; rank < config.merges.size(); ++rank) {
        const auto& m = config.merges[rank];
        uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(m[0])) << 32) | static_cast<uint32_t>(m[1]);
        ranks_.put(key, (static_cast<uint64_t>(rank) << 32) | static_cast<uint32_t>(m[2]));
    }
    static const char* hex = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) {
        Str name = U"<0x";
        name += static_cast<char32_t>(hex[b >> 4]);
        name += static_cast<char32_t>(hex[b & 15]);
        name += U'>';
        byte_ids_[b] = vocab_.find(name);
    }
    for (const auto& [key, ids, sizes] : config.char_pieces) {
        char_pieces_.put(char_of_utf8(key), (static_cast<uint64_t>(pieces_.size()) << 32) | ids.size());
        for (size_t i = 0; i < ids.size(); ++i) pieces_.emplace_back(ids[i], sizes[i]);
    }
    simple_ = config.prefix.empty() && config.suffix.empty();
}

// bpe/chars.py `CharMerges.symbols`: a long byte-level word starts from each character's bytes merged on their
// own (the listed characters, looked up by the character itself) or from its bytes; written to `syms` (a
// character's pieces are no more than its bytes, so `word.size()` symbols are room enough). `word` spells the
// UTF-8 bytes of `chars`. Returns how many, or 0: a byte has no token, take the plain path.
size_t Bpe::premerged(View chars, View word, Symbol* syms) const {
    size_t at = 0, n = 0;  // at: the byte (character of `word`) the character at hand starts with
    for (char32_t c : chars) {
        const size_t len = utf8_length(c);
        if (at + len > word.size()) return 0;
        const uint64_t* found = len > 1 ? char_pieces_.find(c) : nullptr;
        if (found) {
            const size_t first = *found >> 32, count = *found & 0xFFFFFFFFu;
            for (size_t k = first; k < first + count; ++k) syms[n++] = {pieces_[k].first, pieces_[k].second, kNone};
        } else {
            for (size_t k = at; k < at + len; ++k) {
                const int32_t id = word[k] < 0x10000 ? char_ids_[word[k]] : -1;
                if (id < 0) return 0;
                syms[n++] = {id, 1, kNone};
            }
        }
        at += len;
    }
    return at == word.size() ? n : 0;
}

// The id of the piece for character i of `word` (with prefix / suffix), or -1.
int32_t Bpe::piece_id(View word, size_t i, Str& scratch) const {
    if (simple_) {
        char32_t c = word[i];
        return c < 0x10000 ? char_ids_[c] : vocab_.find(word.substr(i, 1));
    }
    scratch.clear();
    if (i > 0) scratch += config_.prefix;
    scratch += word[i];
    if (i + 1 == word.size()) scratch += config_.suffix;
    return vocab_.find(scratch);
}

// The initial symbols of `word` and the character span of each (bpe/model.py `_symbols`). False: an unknown
// character needs the unk token, which is not in the vocabulary.
bool Bpe::symbols(View word, std::vector<int32_t>& ids, std::vector<Token>& spans) const {
    Str scratch;
    int32_t unk_start = -1, unk_end = -1;  // a pending unknown token, emitted before the next known symbol
    auto flush = [&]() {
        if (unk_start < 0) return true;
        if (config_.unk_id < 0) return false;
        ids.push_back(config_.unk_id);
        spans.push_back({0, unk_start, unk_end});
        unk_start = -1;
        return true;
    };
    for (size_t i = 0; i < word.size(); ++i) {
        int32_t id = piece_id(word, i, scratch);
        int32_t at = static_cast<int32_t>(i);
        if (id >= 0) {
            if (!flush()) return false;
            ids.push_back(id);
            spans.push_back({0, at, at + 1});
            continue;
        }
        if (config_.byte_fallback) {  // the "<0xXX>" tokens of the piece's UTF-8 bytes, if all exist
            if (simple_) scratch.assign(1, word[i]);
            std::string bytes;
            for (char32_t c : scratch) append_utf8(bytes, c);
            bool all = true;
            for (unsigned char b : bytes) all = all && byte_ids_[b] >= 0;
            if (all) {
                if (!flush()) return false;
                for (unsigned char b : bytes) {
                    ids.push_back(byte_ids_[b]);
                    spans.push_back({0, at, at + 1});
                }
                continue;
            }
        }
        if (!config_.has_unk_token) continue;  // without an unk token the character is dropped (as HF)
        if (!(unk_start >= 0 && config_.fuse_unk)) {
            if (!flush()) return false;
            unk_start = at;
        }
        unk_end = at + 1;
    }
    return flush();
}

// Merges in place, lowest rank first, leftmost first (bpe/model.py `_merge`: the same scan over the pairs'
// ranks, which on words of a few dozen symbols beats a heap); returns the number of symbols left.
size_t Bpe::merge(Symbol* s, size_t n) const {
    if (n == 0) return 0;
    for (size_t i = 0; i + 1 < n; ++i) s[i].rank = rank_of(s[i].id, s[i + 1].id);
    s[n - 1].rank = kNone;
    while (n > 1) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < n; ++i)
            if (s[i].rank < s[best].rank) best = i;
        if (s[best].rank == kNone) break;
        s[best].id = static_cast<int32_t>(s[best].rank & 0xFFFFFFFFu);
        s[best].size += s[best + 1].size;
        std::copy(s + best + 2, s + n, s + best + 1);
        --n;
        if (best > 0) s[best - 1].rank = rank_of(s[best - 1].id, s[best].id);
        s[best].rank = best + 1 < n ? rank_of(s[best].id, s[best + 1].id) : kNone;
    }
    return n;
}

// The common case: no prefix or suffix and every character a token of its own (always so at byte level).
bool Bpe::plain_symbols(View word, Symbol* symbols) const {
    if (!simple_) return false;
    for (size_t i = 0; i < word.size(); ++i) {
        const char32_t c = word[i];
        const int32_t id = c < 0x10000 ? char_ids_[c] : -1;
        if (id < 0) return false;
        symbols[i] = {id, 1, kNone};
    }
    return true;
}

bool Bpe::tokenize(View word, std::vector<Token>& out) const { return tokenize_bytes(View(), word, out); }

bool Bpe::tokenize_bytes(View chars, View word, std::vector<Token>& out) const {
    if (config_.ignore_merges) {
        int32_t whole = vocab_.find(word);
        if (whole >= 0) {
            out.push_back({whole, 0, static_cast<int32_t>(word.size())});
            return true;
        }
    }
    // A word this short merges in a buffer on the stack (4 KiB; a Chinese clause of 85 characters at byte
    // level): no allocation for any but the longest words.
    constexpr size_t kLocal = 256;
    Symbol local[kLocal];
    std::vector<Symbol> heap;
    Symbol* syms = local;
    if (word.size() > kLocal) {
        heap.resize(word.size());
        syms = heap.data();
    }
    auto emit = [&](size_t n, auto span_of) {  // the merged symbols as tokens (span_of: symbols -> span)
        n = merge(syms, n);
        int32_t first = 0;
        for (size_t t = 0; t < n; ++t) {
            const auto [start, end] = span_of(first, first + syms[t].size);
            out.push_back({syms[t].id, start, end});
            first += syms[t].size;
        }
    };
    auto same = [](int32_t a, int32_t b) { return std::pair<int32_t, int32_t>(a, b); };
    if (word.size() >= 12 && !pieces_.empty() && !chars.empty()) {
        const size_t n = premerged(chars, word, syms);
        if (n > 0) {
            emit(n, same);
            return true;
        }
    }
    if (plain_symbols(word, syms)) {
        emit(word.size(), same);
        return true;
    }
    std::vector<int32_t> ids;
    std::vector<Token> spans;
    spans.reserve(word.size());
    if (!symbols(word, ids, spans)) return false;
    if (ids.size() > kLocal && ids.size() > heap.size()) {
        heap.resize(ids.size());
        syms = heap.data();
    }
    for (size_t t = 0; t < ids.size(); ++t) syms[t] = {ids[t], 1, kNone};
    emit(ids.size(), [&](int32_t a, int32_t b) { return same(spans[a].start, spans[b - 1].end); });
    return true;
}

}  // namespace llmlab
