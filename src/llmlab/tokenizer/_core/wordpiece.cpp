// WordPiece model; see wordpiece.h. Reference: src/llmlab/tokenizer/wordpiece.py.
#include "wordpiece.h"

namespace llmlab {

WordPiece::WordPiece(const WordPieceConfig& config, TrieKeys vocab)
    : trie_(std::move(vocab)),
      prefix_(config.prefix),
      next_root_(trie_.walk(prefix_)),  // the prefix's node (-1: no token has it); the root for no prefix
      unk_id_(config.unk_id),
      max_chars_(config.max_chars) {}

std::vector<std::pair<char32_t, int32_t>> WordPiece::single_character_tokens() const {
    std::vector<std::pair<char32_t, int32_t>> tokens;
    if (max_chars_ < 1) return tokens;  // (every word is then the unk token)
    trie_.for_each_child(0, [&](char32_t c, int32_t node) {
        if (trie_.value(node) >= 0) tokens.emplace_back(c, trie_.value(node));
    });
    return tokens;
}

bool WordPiece::tokenize(View word, std::vector<Token>& out) const {
    const int32_t n = static_cast<int32_t>(word.size());
    const size_t mark = out.size();
    auto unk = [&]() {
        out.resize(mark);
        if (unk_id_ < 0) return false;
        out.push_back({unk_id_, 0, n});
        return true;
    };
    if (n > max_chars_) return unk();
    int32_t start = 0;
    while (start < n) {  // the longest token from `start`: walk the trie, remember the last token passed
        int32_t node = start ? next_root_ : 0, best_id = -1, best_end = -1;
        for (int32_t i = start; i < n && node >= 0; ++i) {
            node = trie_.child(node, word[i]);
            if (node < 0) break;
            if (trie_.value(node) >= 0) {
                best_id = trie_.value(node);
                best_end = i + 1;
            }
        }
        if (best_id < 0) return unk();
        out.push_back({best_id, start, best_end});
        start = best_end;
    }
    return true;
}

}  // namespace llmlab
