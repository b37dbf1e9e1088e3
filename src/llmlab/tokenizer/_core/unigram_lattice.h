// The lattices of the Unigram trainer (Kudo 2018): the E-step's expected counts by forward-backward, the
// Viterbi counts and the pruning's second-best segmentations, over every word of the corpus.
// Reference: src/llmlab/tokenizer/unigram/lattice.py (sentencepiece unigram_model.cc `PopulateMarginal`,
// `Viterbi`, and unigram_model_trainer.cc's pruning); tests/tokenizer/test_core_train_unigram.py proves
// this equal to it.
//
// Layout: as the Python reference, node p is position p of the corpus array (seeds.py), word w runs over the
// nodes start[w]..end[w], and an edge is one occurrence of one piece. The edges are kept once, grouped by the
// node they end at, each group ordered by start (so a tie goes to the longest piece, as in sentencepiece): 6
// bytes an edge (its length and piece) and 8 a node, where the Python reference keeps 20 bytes an edge.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace llmlab {

class UnigramLattice {
  public:
    // Words w: nodes start[w]..end[w], weight count[w]; edges (src[i] -> dst[i], piece[i]), piece -1 for an
    // unknown character. Throws std::invalid_argument when an edge leaves its word or is longer than 65535.
    UnigramLattice(std::vector<int64_t> start, std::vector<int64_t> end, std::vector<double> count, size_t n_nodes,
                   const int32_t* src, const int32_t* dst, const int32_t* piece, size_t n_edges);

    // Drop the edges of dead pieces; a dead piece of one character becomes an unknown node (piece -1).
    void keep(const bool* alive, size_t n_pieces);

    // scores: one per piece, then the unknown node's (n_scores = pieces + 1).
    // Each piece's expected count in all words, weighted by word counts (the E-step).
    std::vector<double> expected_counts(const double* scores, size_t n_scores) const;
    // How often each piece is used by the best segmentations of all words, weighted by word counts.
    std::vector<double> viterbi_counts(const double* scores, size_t n_scores) const;

    // For each piece (an occurrence at node reps[i], lengths[i] characters): the best segmentation of that
    // occurrence that does not use the piece itself: its score, and its tokens (piece number i, token id),
    // grouped by piece, last token first.
    struct SecondBest {
        std::vector<double> score;
        std::vector<int64_t> win;
        std::vector<int32_t> token;
    };
    SecondBest second_best(const int64_t* reps, const int64_t* lengths, size_t n, const double* scores,
                           size_t n_scores) const;

    size_t edges() const { return piece_.size(); }
    size_t nodes() const { return into_.size() - 1; }
    size_t pieces() const { return pieces_; }  // the highest piece id + 1
    size_t bytes() const;

  private:
    double score_of(int32_t piece, const double* scores, size_t n_scores) const {
        return piece >= 0 ? scores[piece] : scores[n_scores - 1];
    }
    std::vector<int64_t> start_, end_;
    std::vector<double> count_;
    std::vector<uint64_t> into_;    // (T + 1,) the edges ending at node q are [into_[q], into_[q + 1])
    std::vector<uint16_t> length_;  // (E,) characters each edge covers: it starts at q - length
    std::vector<int32_t> piece_;    // (E,)
    size_t pieces_ = 0;
};

}  // namespace llmlab
