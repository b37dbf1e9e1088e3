// The model stage: one pre-tokenized word (code points) -> tokens whose spans are character indices into it.
// Each model mirrors its Python reference (bpe/model.py, wordpiece.py, unigram/model.py) rule for rule; a
// model is read-only once built, so threads share it.
#pragma once

#include "common.h"

namespace llmlab {

class Model {
  public:
    virtual ~Model() = default;
    // Appends the tokens of `word` to `out`. False where the Python model raises (a missing unk token): the
    // text is then left to the Python path, which raises the same error.
    virtual bool tokenize(View word, std::vector<Token>& out) const = 0;
    // Byte level: `word` spells the UTF-8 bytes of `chars` as GPT-2 characters. A model may start from the
    // characters themselves (BPE looks up each character's own merges); by default `word` alone.
    virtual bool tokenize_bytes(View chars, View word, std::vector<Token>& out) const {
        (void)chars;
        return tokenize(word, out);
    }
    // Characters whose one-character word the model splits into one token spanning it, with that token's id,
    // known without tokenizing them (a word cache starts with them); by default none.
    virtual std::vector<std::pair<char32_t, int32_t>> single_character_tokens() const { return {}; }
};

}  // namespace llmlab
