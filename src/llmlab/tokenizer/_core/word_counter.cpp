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

void WordCounter::drain_sorted(std::vector<uint32_t>& codes, std::vector<int64_t>& lengths,
                               std::vector<int64_t>& counts) {
    struct Entry {
        size_t offset, length;
        int64_t count;
    };
    Str words;  // the mapped words, one after the other (mapping changes the order: sort after it)
    std::vector<Entry> entries;
    entries.reserve(size_);
    for (const Slot& s : slots_) {
        if (!s.count) continue;
        const View w = mapped(View(arena_).substr(s.offset, s.length));
        entries.push_back({words.size(), w.size(), s.count});
        words.append(w);
    }
    clear();
    const View all(words);
    std::sort(entries.begin(), entries.end(), [&](const Entry& a, const Entry& b) {
        return all.substr(a.offset, a.length) < all.substr(b.offset, b.length);  // code point order, as Python
    });
    codes.clear();
    codes.reserve(words.size());
    lengths.assign(entries.size(), 0);
    counts.assign(entries.size(), 0);
    for (size_t i = 0; i < entries.size(); ++i) {
        codes.insert(codes.end(), words.begin() + entries[i].offset,
                     words.begin() + entries[i].offset + entries[i].length);
        lengths[i] = static_cast<int64_t>(entries[i].length);
        counts[i] = entries[i].count;
    }
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
