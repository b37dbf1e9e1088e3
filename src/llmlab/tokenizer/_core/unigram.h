// Unigram language model: the Viterbi segmentation of one word over the lattice of vocabulary pieces.
// Reference: src/llmlab/tokenizer/unigram/model.py (sentencepiece EncodeOptimized, HF models.Unigram).
#pragma once

#include <array>

#include "model.h"
#include "trie.h"

namespace llmlab {

struct UnigramSettings {
    std::vector<double> scores;  // by id
    int32_t unk_id = -1;                           // -1: none
    double unk_score = 0.0;
    bool byte_fallback = false;
    std::array<int32_t, 256> byte_ids{};
};

struct UnigramConfig : UnigramSettings {  // the settings and the pieces (which the model keeps in a trie)
    TrieKeys matched;  // the pieces that may match text, with their ids
};

class Unigram : public Model {
  public:
    explicit Unigram(UnigramConfig config);  // its pieces are moved into the trie
    bool tokenize(View word, std::vector<Token>& out) const override;

  private:
    Trie pieces_;
    UnigramSettings config_;
};

}  // namespace llmlab
