// Word counting; see word_counter.h. Reference: src/llmlab/tokenizer/counting.py `count_chunk`.
#include "word_counter.h"

#include <algorithm>

namespace llmlab {

WordCounter::WordCounter(std::unique_ptr<Normalizer> normalizer, std::unique_ptr<PreTokenizer> pre_tokenizer,
                         bool byte_level, const std::array<char32_t, 256>& byte_chars)
    : normalizer_(std::move(normalizer)),
      pre_tokenizer_(std::move(pre_tokenizer)),
      byte_level_(byte_level),
      byte_chars_(byte_chars) {
    clear();
}

bool WordCounter::add(View line) {
    View text = line;
    if (normalizer_) {
        if (normalizer_->hard(line)) return false;
        normalizer_->normalize(line, normalized_, align_);
        text = normalized_;
    }
    if (!pre_tokenizer_) {  // the whole text is one word
        if (!text.empty()) count(text);
        return true;
    }
    View buffer = pre_tokenizer_->split(text, true, full_, words_);
    for (const Word& w : words_) count(buffer.substr(w.offset, w.length));
    return true;
}

void WordCounter::count(View word) {
    const uint64_t h = hash_view(word);
    size_t i = h & (slots_.size() - 1);
    while (slots_[i].count) {
        const Slot& s = slots_[i];
        if (s.hash == h && View(arena_).substr(s.offset, s.length) == word) {
            ++slots_[i].count;
            return;
        }
        i = (i + 1) & (slots_.size() - 1);
    }
    slots_[i] = {h, arena_.size(), 1, static_cast<uint32_t>(word.size())};
    arena_.append(word);
    if (++size_ * 2 > slots_.size()) grow();
}

namespace {

struct Entry {
    uint64_t prefix;  // the key's first elements, packed so that their order is the key's (`prefix_of`)
    size_t offset, length;
    int64_t count;
};

// The first 8 bytes of a key (or 3 code points of 21 bits), the first the highest, 0 past its end: keys in
// the order of their prefixes are in order, and equal prefixes need the whole keys compared.
template <class Char>
uint64_t prefix_of(std::basic_string_view<Char> key) {
    constexpr int bits = sizeof(Char) == 1 ? 8 : 21;
    uint64_t prefix = 0;
    for (int i = 0; i < 64 / bits; ++i) {
        const uint64_t c = i < static_cast<int>(key.size()) ? static_cast<uint64_t>(key[i]) & ((1u << bits) - 1) : 0;
        prefix = prefix << bits | c;
    }
    return prefix;
}

// Sorts the words (`entries`, strings of `keys`) by their keys, element by element, and writes them as a
// WordTable's arrays, each key element turned into its code point by `code`.
template <class Keys, class Code>
void write_sorted(const Keys& keys, std::vector<Entry>& entries, Code&& code, std::vector<uint32_t>& codes,
                  std::vector<int64_t>& lengths, std::vector<int64_t>& counts) {
    using Char = typename Keys::value_type;
    const std::basic_string_view<Char> all(keys);
    for (Entry& e : entries) e.prefix = prefix_of(all.substr(e.offset, e.length));
    std::sort(entries.begin(), entries.end(), [&](const Entry& a, const Entry& b) {
        if (a.prefix != b.prefix) return a.prefix < b.prefix;  // most pairs: no need to read the words
        return all.substr(a.offset, a.length) < all.substr(b.offset, b.length);
    });
    codes.clear();
    codes.reserve(keys.size());
    lengths.assign(entries.size(), 0);
    counts.assign(entries.size(), 0);
    for (size_t i = 0; i < entries.size(); ++i) {
        for (size_t k = entries[i].offset; k < entries[i].offset + entries[i].length; ++k) codes.push_back(code(keys[k]));
        lengths[i] = static_cast<int64_t>(entries[i].length);
        counts[i] = entries[i].count;
    }
}

}  // namespace

void WordCounter::drain_sorted(std::vector<uint32_t>& codes, std::vector<int64_t>& lengths,
                               std::vector<int64_t>& counts) {
    std::vector<Entry> entries;
    entries.reserve(size_);
    if (!byte_level_) {  // code point order, as Python's
        for (const Slot& s : slots_)
            if (s.count) entries.push_back({0, s.offset, s.length, s.count});
        const Str words = std::move(arena_);
        clear();
        write_sorted(words, entries, [](char32_t c) { return static_cast<uint32_t>(c); }, codes, lengths, counts);
        return;
    }
    // Byte level: the order of the mapped words is that of their UTF-8 bytes, each byte replaced by the rank of
    // its character among the 256 (a byte per character instead of four, compared as memcmp does).
    std::array<char32_t, 256> by_rank = byte_chars_;
    std::sort(by_rank.begin(), by_rank.end());
    std::array<unsigned char, 256> rank{};
    for (int b = 0; b < 256; ++b)
        rank[b] = static_cast<unsigned char>(std::lower_bound(by_rank.begin(), by_rank.end(), byte_chars_[b]) - by_rank.begin());
    std::string keys;
    for (const Slot& s : slots_) {
        if (!s.count) continue;
        const size_t at = keys.size();
        for (char32_t c : View(arena_).substr(s.offset, s.length)) append_utf8(keys, c);
        for (size_t k = at; k < keys.size(); ++k) keys[k] = static_cast<char>(rank[static_cast<unsigned char>(keys[k])]);
        entries.push_back({0, at, keys.size() - at, s.count});
    }
    clear();
    write_sorted(keys, entries, [&](char r) { return static_cast<uint32_t>(by_rank[static_cast<unsigned char>(r)]); },
                 codes, lengths, counts);
}

void WordCounter::grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    for (const Slot& s : old) {
        if (!s.count) continue;
        size_t i = s.hash & (slots_.size() - 1);
        while (slots_[i].count) i = (i + 1) & (slots_.size() - 1);
        slots_[i] = s;
    }
}

void WordCounter::clear() {
    std::vector<Slot>(1024).swap(slots_);  // gives the memory back, not only the contents
    Str().swap(arena_);
    size_ = 0;
}

View WordCounter::mapped(View word) {  // byte_level.py `to_byte_level`
    if (!byte_level_) return word;
    std::string bytes;
    for (char32_t c : word) append_utf8(bytes, c);
    word_.clear();
    for (unsigned char b : bytes) word_ += byte_chars_[b];
    return word_;
}

}  // namespace llmlab
