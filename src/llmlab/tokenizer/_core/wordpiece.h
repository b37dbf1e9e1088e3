// WordPiece: greedy longest match first, left to right; an unsplittable or too long word is one unk token.
// Reference: src/llmlab/tokenizer/wordpiece.py (Google BERT's WordpieceTokenizer, HF models.WordPiece).
#pragma once

#include "model.h"
#include "trie.h"

namespace llmlab {

struct WordPieceConfig {
    std::vector<std::pair<Str, int32_t>> vocab;
    int32_t unk_id = -1;  // -1: the unk token is not in the vocabulary
    Str prefix;           // continuing_subword_prefix
    int64_t max_chars = 100;
};

class WordPiece : public Model {
  public:
    explicit WordPiece(const WordPieceConfig& config);
    bool tokenize(View word, std::vector<Token>& out) const override;

  private:
    Trie first_, next_;  // tokens that start a word; tokens that continue one (without their prefix)
    int32_t unk_id_;
    int64_t max_chars_;
};

}  // namespace llmlab
