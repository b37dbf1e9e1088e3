// Pre-tokenizers; see pretokenizer.h. Reference: src/llmlab/tokenizer/pretokenize.py.
#include "pretokenizer.h"

namespace llmlab {

namespace {

// Spans of words that follow one another in a text with `shift` characters prepended (tiling_spans).
void tile(std::vector<Word>& words, int32_t shift) {
    int32_t at = -shift;
    for (Word& w : words) {
        w.start = at;
        at += static_cast<int32_t>(w.length);
        w.end = at;
    }
    if (shift && !words.empty()) {
        words[0].start = 0;
        if (words[0].end < 1) words[0].end = 1;
    }
}

}  // namespace

View PreTokenizer::split(View text, bool first, Str& full, std::vector<Word>& words) const {
    words.clear();
    if (kind == kBert) {
        split_bert(text, words);
        return text;
    }
    if (kind == kByteLevel) {
        const int32_t shift = add_prefix_space && !text.empty() && text[0] != U' ';
        View buffer = text;  // (copied only to put the space in front)
        if (shift) {
            full.assign(1, U' ');
            full.append(text);
            buffer = full;
        }
        if (!use_regex) {
            if (!buffer.empty()) words.push_back({0, static_cast<uint32_t>(buffer.size()), 0, 0});
        } else {
            split_gpt2(buffer, words);
        }
        tile(words, shift);
        return buffer;
    }
    // Metaspace
    const bool prepended = prepend == kAlways || (prepend == kFirst && first);
    const bool starts = !text.empty() && (text[0] == U' ' || text[0] == replacement);
    const int32_t shift = prepended && !text.empty() && !starts;
    full.resize(shift + text.size());
    char32_t* to = full.data();
    const char32_t mark = replacement;  // a local: the loop then vectorizes (no aliasing with `to`)
    if (shift) *to++ = mark;
    for (size_t k = 0; k < text.size(); ++k) to[k] = text[k] == U' ' ? mark : text[k];
    if (!split_words) {
        if (!full.empty())
            words.push_back({0, static_cast<uint32_t>(full.size()), 0, static_cast<int32_t>(text.size())});
        return full;
    }
    const char32_t* chars = full.data();
    const size_t n = full.size();
    size_t i = 0;
    while (i < n) {  // ▁[^▁]* | [^▁]+
        size_t j = i + 1;
        while (j < n && chars[j] != replacement) ++j;
        words.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(j - i), 0, 0});
        i = j;
    }
    tile(words, shift);
    return full;
}

void PreTokenizer::split_bert(View text, std::vector<Word>& words) const {
    size_t i = 0;
    const size_t n = text.size();
    while (i < n) {
        const uint8_t cls = classes[text[i]];
        if (cls == kWhite) {
            ++i;
        } else if (cls == kPunct) {
            words.push_back({static_cast<uint32_t>(i), 1, static_cast<int32_t>(i), static_cast<int32_t>(i + 1)});
            ++i;
        } else {
            size_t j = i + 1;
            while (j < n && classes[text[j]] == kWord) ++j;
            words.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(j - i), static_cast<int32_t>(i),
                             static_cast<int32_t>(j)});
            i = j;
        }
    }
}

// The length of the GPT-2 regex's match at i (its alternatives tried in order; each class read once).
size_t PreTokenizer::gpt2_match(View t, size_t i) const {
    const size_t n = t.size();
    const char32_t c = t[i];
    if (c == U'\'' && i + 1 < n) {  // 's|'t|'re|'ve|'m|'ll|'d
        const char32_t a = t[i + 1];
        if (a == U's' || a == U't' || a == U'm' || a == U'd') return 2;
        if (i + 2 < n) {
            const char32_t b = t[i + 2];
            if ((a == U'r' && b == U'e') || (a == U'v' && b == U'e') || (a == U'l' && b == U'l')) return 3;
        }
    }
    // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+': a run of one class (with the space before it), else
    // '\s+(?!\S)' or '\s+'
    size_t from = i;
    uint8_t cls = classes[c];
    if (c == U' ' && i + 1 < n && classes[t[i + 1]] != kSpace) cls = classes[t[from = i + 1]];
    size_t j = from + 1;
    while (j < n && classes[t[j]] == cls) ++j;
    const size_t len = j - i;
    return cls != kSpace || j == n || len == 1 ? len : len - 1;
}

void PreTokenizer::split_gpt2(View text, std::vector<Word>& words) const {
    size_t i = 0;
    while (i < text.size()) {
        size_t len = gpt2_match(text, i);
        words.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(len), 0, 0});
        i += len;
    }
}

}  // namespace llmlab
