// WordPiece: greedy longest match first, left to right; an unsplittable or too long word is one unk token.
// Reference: src/llmlab/tokenizer/wordpiece.py (Google BERT's WordpieceTokenizer, HF models.WordPiece).
#pragma once

#include "model.h"
#include "trie.h"

namespace llmlab {

struct WordPieceConfig {
    int32_t unk_id = -1;  // -1: the unk token is not in the vocabulary
    Str prefix;           // continuing_subword_prefix
    int64_t max_chars = 100;
};

class WordPiece : public Model {
  public:
    WordPiece(const WordPieceConfig& config, TrieKeys vocab);  // vocab: token -> id
    bool tokenize(View word, std::vector<Token>& out) const override;
    // Every token of one character (not the prefixed form): the longest match of its one-character word.
    std::vector<std::pair<char32_t, int32_t>> single_character_tokens() const override;

  private:
    // Every token. The tokens that continue a word are the subtree under the prefix ("##"): searched from
    // `next_root_` (-1: no token has the prefix), they need no trie of their own.
    Trie trie_;
    Str prefix_;
    int32_t next_root_;
    int32_t unk_id_;
    int64_t max_chars_;
};

}  // namespace llmlab
