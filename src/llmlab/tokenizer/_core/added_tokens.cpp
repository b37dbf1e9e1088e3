// The added-token matcher; see added_tokens.h. Reference: src/llmlab/tokenizer/added_tokens.py.
#include "added_tokens.h"

#include <algorithm>
#include <cwchar>

namespace llmlab {

AddedMatcher::AddedMatcher(std::vector<AddedToken> tokens, const CharTable* word_chars, const CharTable* spaces)
    : tokens_(std::move(tokens)), first_(0x10000, false), word_chars_(word_chars), spaces_(spaces) {
    TrieKeys contents;
    for (size_t i = 0; i < tokens_.size(); ++i) {
        contents.add(tokens_[i].content, static_cast<int32_t>(i));
        char32_t c = tokens_[i].content[0];
        if (c < 0x10000) first_[c] = true;
    }
    trie_ = Trie(std::move(contents));
    one_first_ = !tokens_.empty() && std::all_of(tokens_.begin(), tokens_.end(), [&](const AddedToken& t) {
        return t.content[0] == tokens_[0].content[0];
    });
}

// The first position from i on where a token may start (text.size(): none).
size_t AddedMatcher::next_start(View text, size_t i) const {
    const size_t n = text.size();
    if (i >= n) return n;
    if (one_first_) {  // every token starts with the same character ('[' or '<'): the library's scan
        const void* at = std::wmemchr(reinterpret_cast<const wchar_t*>(text.data()) + i,
                                      static_cast<wchar_t>(tokens_[0].content[0]), n - i);
        return at ? static_cast<const char32_t*>(at) - text.data() : n;
    }
    const uint8_t* first = first_.data();
    while (i < n && text[i] < 0x10000 && !first[text[i]]) ++i;
    return i;
}

// The longest token starting at i (its index, `end` set), or -1.
int32_t AddedMatcher::longest_at(View text, size_t i, size_t& end) const {
    int32_t node = 0, best = -1;
    for (size_t j = i; j < text.size(); ++j) {
        node = trie_.child(node, text[j]);
        if (node < 0) break;
        if (trie_.value(node) >= 0) {
            best = trie_.value(node);
            end = j + 1;
        }
    }
    return best;
}

bool AddedMatcher::split(View text, std::vector<Piece>& pieces) const {
    pieces.clear();
    if (tokens_.empty()) return false;
    const size_t n = text.size();
    size_t pos = 0;  // the pieces so far end at pos
    bool found = false;
    for (size_t i = next_start(text, 0); i < n; i = next_start(text, i + 1)) {
        size_t match_end = 0;
        int32_t t = longest_at(text, i, match_end);
        if (t < 0) continue;
        found = true;
        const AddedToken& tok = tokens_[t];
        size_t start = i, stop = match_end;
        i = match_end - 1;  // the loop's ++i resumes the search at the match's end, as finditer does
        if (tok.single_word && ((start > 0 && (*word_chars_)[text[start - 1]]) ||
                                (stop < n && (*word_chars_)[text[stop]])))
            continue;
        if (tok.lstrip) {  // the whitespace before it, but not before the previous piece's end
            size_t spaces = start;
            while (spaces > 0 && (*spaces_)[text[spaces - 1]]) --spaces;
            start = std::max(spaces, pos);
        }
        if (tok.rstrip) {
            while (stop < n && (*spaces_)[text[stop]]) ++stop;
        }
        if (pos < start) pieces.push_back({static_cast<int32_t>(pos), static_cast<int32_t>(start), -1});
        pieces.push_back({static_cast<int32_t>(start), static_cast<int32_t>(stop), t});
        pos = stop;
    }
    if (!found) return false;
    if (pos < n) pieces.push_back({static_cast<int32_t>(pos), static_cast<int32_t>(n), -1});
    return true;
}

}  // namespace llmlab
