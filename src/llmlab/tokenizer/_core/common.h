// Shared types of the compiled tokenizer core: text as code points, token spans, and the flat hash maps that
// stand in for Python dicts (vocabularies, merge ranks, word caches).
//
// Text is UTF-32 (one char32_t per code point) so that every offset is a code point index, as Python's are.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace llmlab {

using Str = std::u32string;
using View = std::u32string_view;

// One token of a word: its id and the span of characters it covers, [start, end).
struct Token {
    int32_t id;
    int32_t start;
    int32_t end;
};

inline uint64_t mix64(uint64_t x) {  // splitmix64 finalizer: spreads the bits of a key over the table
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

// Two code points (21 bits each) per multiply: the keys hashed are mostly words of a few characters, looked up
// once per word of every text (a multiply per character was 3% of an English encode's instructions). The
// finalizer then spreads every character over the low bits (the slot).
inline uint64_t hash_view(View v) {
    constexpr uint64_t k = 0x9e3779b97f4a7c15ULL;
    uint64_t h = k ^ v.size();
    size_t i = 0;
    for (; i + 1 < v.size(); i += 2) h = (h ^ (v[i] | static_cast<uint64_t>(v[i + 1]) << 32)) * k;
    if (i < v.size()) h = (h ^ v[i]) * k;
    return mix64(h);
}

// Whether every character is ASCII: one OR over the text (which vectorizes) instead of a test per character.
inline bool all_ascii(View v) {
    char32_t any = 0;
    for (char32_t c : v) any |= c;
    return any < 0x80;
}

// Equal strings (a plain loop: the keys compared are a few characters long).
inline bool same_text(View a, View b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (a[i] != b[i]) return false;
    return true;
}

// The UTF-8 bytes of `c` written to `out`; returns how many (1 to 4).
inline int utf8_bytes(char32_t c, unsigned char* out) {
    if (c < 0x80) {
        out[0] = static_cast<unsigned char>(c);
        return 1;
    }
    if (c < 0x800) {
        out[0] = static_cast<unsigned char>(0xC0 | (c >> 6));
        out[1] = static_cast<unsigned char>(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = static_cast<unsigned char>(0xE0 | (c >> 12));
        out[1] = static_cast<unsigned char>(0x80 | ((c >> 6) & 0x3F));
        out[2] = static_cast<unsigned char>(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = static_cast<unsigned char>(0xF0 | (c >> 18));
    out[1] = static_cast<unsigned char>(0x80 | ((c >> 12) & 0x3F));
    out[2] = static_cast<unsigned char>(0x80 | ((c >> 6) & 0x3F));
    out[3] = static_cast<unsigned char>(0x80 | (c & 0x3F));
    return 4;
}

inline void append_utf8(std::string& out, char32_t c) {
    unsigned char bytes[4];
    out.append(reinterpret_cast<const char*>(bytes), utf8_bytes(c, bytes));
}

// uint64 -> V, open addressing with linear probing; the key ~0 marks an empty slot.
template <class V>
class U64Map {
  public:
    static constexpr uint64_t kEmpty = ~0ULL;

    void reserve(size_t n) {
        size_t cap = 16;
        while (cap < n * 2) cap <<= 1;
        if (cap > slots_.size()) rehash(cap);
    }
    void put(uint64_t key, V value) {
        if ((size_ + 1) * 2 > slots_.size()) rehash(slots_.empty() ? 16 : slots_.size() * 2);
        size_t i = home(key) & (slots_.size() - 1);
        while (slots_[i].key != kEmpty && slots_[i].key != key) i = (i + 1) & (slots_.size() - 1);
        if (slots_[i].key == kEmpty) ++size_;
        slots_[i] = {key, value};
    }
    const V* find(uint64_t key) const {
        if (slots_.empty()) return nullptr;
        size_t i = home(key) & (slots_.size() - 1);
        while (true) {
            const Slot& s = slots_[i];
            if (s.key == key) return &s.value;
            if (s.key == kEmpty) return nullptr;
            i = (i + 1) & (slots_.size() - 1);
        }
    }
    size_t size() const { return size_; }

  private:
    struct Slot {
        uint64_t key = kEmpty;
        V value{};
    };
    // Where a key's probe starts: one multiply carries every bit of the key into the high half, folded onto the
    // low bits that the mask keeps. Half the instructions of mix64, in the inner loops of BPE's merges (rank
    // lookups) and of the tries' walks; the keys (id pairs, node and character) are far from adversarial.
    static uint64_t home(uint64_t key) {
        const uint64_t h = key * 0x9e3779b97f4a7c15ULL;
        return h ^ (h >> 32);
    }
    void rehash(size_t cap) {
        std::vector<Slot> old(cap);
        old.swap(slots_);
        size_ = 0;
        for (const Slot& s : old)
            if (s.key != kEmpty) put(s.key, s.value);
    }
    std::vector<Slot> slots_;
    size_t size_ = 0;
};

// A string of code points -> int32 (a vocabulary); keys live in one arena.
class StrMap {
  public:
    void put(View key, int32_t value) {
        if ((size_ + 1) * 2 > slots_.size()) rehash(slots_.empty() ? 16 : slots_.size() * 2);
        uint64_t h = hash_view(key);
        size_t i = h & (slots_.size() - 1);
        while (slots_[i].len != kEmpty) {
            if (slots_[i].hash == h && same_text(key_of(slots_[i]), key)) {
                slots_[i].value = value;
                return;
            }
            i = (i + 1) & (slots_.size() - 1);
        }
        slots_[i] = {h, static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(key.size()), value};
        arena_.append(key);
        ++size_;
    }
    void reserve(size_t n) {  // room for n keys without a rehash
        size_t cap = 16;
        while (cap < n * 2) cap <<= 1;
        if (cap > slots_.size()) rehash(cap);
    }
    int32_t find(View key, int32_t missing = -1) const {
        if (slots_.empty()) return missing;
        uint64_t h = hash_view(key);
        size_t i = h & (slots_.size() - 1);
        while (slots_[i].len != kEmpty) {
            if (slots_[i].hash == h && same_text(key_of(slots_[i]), key)) return slots_[i].value;
            i = (i + 1) & (slots_.size() - 1);
        }
        return missing;
    }
    size_t size() const { return size_; }

  private:
    static constexpr uint32_t kEmpty = ~0U;
    struct Slot {
        uint64_t hash = 0;
        uint32_t offset = 0;
        uint32_t len = kEmpty;
        int32_t value = 0;
    };
    View key_of(const Slot& s) const { return View(arena_).substr(s.offset, s.len); }
    void rehash(size_t cap) {
        std::vector<Slot> old(cap);
        old.swap(slots_);
        for (const Slot& s : old) {
            if (s.len == kEmpty) continue;
            size_t i = s.hash & (slots_.size() - 1);
            while (slots_[i].len != kEmpty) i = (i + 1) & (slots_.size() - 1);
            slots_[i] = s;
        }
    }
    std::vector<Slot> slots_;
    Str arena_;
    size_t size_ = 0;
};

}  // namespace llmlab
