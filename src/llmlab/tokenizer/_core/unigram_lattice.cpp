// The lattices of the Unigram trainer: forward-backward, Viterbi and second-best segmentations, one word (or
// one piece's window) at a time over the edges grouped by end node.
// Reference: src/llmlab/tokenizer/unigram/lattice.py (sentencepiece unigram_model.cc, unigram_model_trainer.cc).
//
// Sums of probabilities are taken in logs with the maximum factored out, as the reference does: forward,
// alpha[q] = top + log(sum exp(v - top)) over the edges into q; backward, beta[s] gathers the edges leaving s,
// which arrive one at a time here (the edges are grouped by end node), so its maximum and scaled sum are kept
// running. Ties between segmentations go to the first edge of a group, the one that starts first.
#include "unigram_lattice.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>

namespace llmlab {

namespace {
constexpr double kNone = -std::numeric_limits<double>::infinity();
}

UnigramLattice::UnigramLattice(std::vector<int64_t> start, std::vector<int64_t> end, std::vector<double> count,
                               size_t n_nodes, const int32_t* src, const int32_t* dst, const int32_t* piece,
                               size_t n_edges)
    : start_(std::move(start)), end_(std::move(end)), count_(std::move(count)), into_(n_nodes + 1, 0),
      length_(n_edges), piece_(n_edges) {
    for (size_t e = 0; e < n_edges; ++e) {
        if (src[e] < 0 || dst[e] <= src[e] || static_cast<size_t>(dst[e]) >= n_nodes || dst[e] - src[e] > 0xFFFF)
            throw std::invalid_argument("UnigramLattice: an edge outside the corpus, empty or over 65535 long");
        ++into_[dst[e] + 1];
        pieces_ = std::max<size_t>(pieces_, static_cast<size_t>(std::max(piece[e], -1) + 1));
    }
    for (size_t q = 0; q < n_nodes; ++q) into_[q + 1] += into_[q];
    for (size_t e = 0; e < n_edges; ++e) {  // a counting sort by end node; into_[q] then ends q's group
        const uint64_t at = into_[dst[e]]++;
        length_[at] = static_cast<uint16_t>(dst[e] - src[e]);
        piece_[at] = piece[e];
    }
    for (size_t q = n_nodes; q > 0; --q) into_[q] = into_[q - 1];
    into_[0] = 0;
    for (size_t w = 0; w < start_.size(); ++w)  // the sweeps read only the nodes of each word
        for (int64_t q = start_[w] + 1; q <= end_[w]; ++q)
            for (uint64_t e = into_[q]; e < into_[q + 1]; ++e)
                if (length_[e] > q - start_[w]) throw std::invalid_argument("UnigramLattice: an edge leaves its word");
    for (size_t q = 0; q < n_nodes; ++q) {  // each group by start: longest first (a group has at most ~16)
        for (uint64_t i = into_[q] + 1; i < into_[q + 1]; ++i) {
            for (uint64_t j = i; j > into_[q] && length_[j - 1] < length_[j]; --j) {
                std::swap(length_[j - 1], length_[j]);
                std::swap(piece_[j - 1], piece_[j]);
            }
        }
    }
}

void UnigramLattice::keep(const bool* alive, size_t n_pieces) {
    uint64_t out = 0, from = 0;
    for (size_t q = 0; q + 1 < into_.size(); ++q) {
        const uint64_t to = into_[q + 1];
        for (; from < to; ++from) {
            int32_t p = piece_[from];
            if (p >= 0 && (static_cast<size_t>(p) >= n_pieces || !alive[p])) {
                if (length_[from] != 1) continue;  // a dead piece's edge goes; a dead character stays, unknown
                p = -1;
            }
            length_[out] = length_[from];
            piece_[out] = p;
            ++out;
        }
        into_[q + 1] = out;
    }
    length_.resize(out);
    piece_.resize(out);
    length_.shrink_to_fit();
    piece_.shrink_to_fit();
}

std::vector<double> UnigramLattice::expected_counts(const double* scores, size_t n_scores) const {
    std::vector<double> counts(n_scores - 1, 0.0), alpha, beta, scaled, top, term;
    for (size_t w = 0; w < start_.size(); ++w) {
        const int64_t s0 = start_[w], n = end_[w] - s0;
        const uint64_t first = into_[s0 + 1];
        alpha.assign(n + 1, kNone);
        beta.assign(n + 1, kNone);
        scaled.assign(n + 1, 0.0);
        top.assign(n + 1, 0.0);
        term.resize(into_[s0 + n + 1] - first);  // exp(alpha[start] + score - top[end]) of each edge
        alpha[0] = 0.0;
        for (int64_t q = 1; q <= n; ++q) {  // forward
            const uint64_t lo = into_[s0 + q], hi = into_[s0 + q + 1];
            double most = kNone, total = 0.0;
            for (uint64_t e = lo; e < hi; ++e) {
                term[e - first] = alpha[q - length_[e]] + score_of(piece_[e], scores, n_scores);
                most = std::max(most, term[e - first]);
            }
            for (uint64_t e = lo; e < hi; ++e) total += term[e - first] = std::exp(term[e - first] - most);
            alpha[q] = most + std::log(total);
            top[q] = most;
        }
        beta[n] = 0.0;
        for (int64_t q = n; q >= 1; --q) {  // backward: beta[q] is complete once every later node is done
            if (q < n) beta[q] += std::log(scaled[q]);
            for (uint64_t e = into_[s0 + q]; e < into_[s0 + q + 1]; ++e) {
                const int64_t s = q - length_[e];
                const double v = beta[q] + score_of(piece_[e], scores, n_scores);
                if (v > beta[s]) {  // beta[s] holds the running maximum, scaled[s] the sum of exp(v - maximum)
                    scaled[s] = scaled[s] * std::exp(beta[s] - v) + 1.0;
                    beta[s] = v;
                } else {
                    scaled[s] += std::exp(v - beta[s]);
                }
            }
        }
        // posterior of an edge into q: exp(alpha[start] + score + beta[q]) * count / Z = term * exp(top + beta[q]
        // + log(count) - log Z)
        const double log_weight = std::log(count_[w]) - alpha[n];
        for (int64_t q = 1; q <= n; ++q) {
            const double factor = std::exp(top[q] + beta[q] + log_weight);
            for (uint64_t e = into_[s0 + q]; e < into_[s0 + q + 1]; ++e)
                if (piece_[e] >= 0) counts[piece_[e]] += term[e - first] * factor;  // unknown nodes count for none
        }
    }
    return counts;
}

std::vector<double> UnigramLattice::viterbi_counts(const double* scores, size_t n_scores) const {
    std::vector<double> freq(n_scores - 1, 0.0), best;
    std::vector<uint64_t> back;
    for (size_t w = 0; w < start_.size(); ++w) {
        const int64_t s0 = start_[w], n = end_[w] - s0;
        best.assign(n + 1, kNone);
        back.assign(n + 1, 0);
        best[0] = 0.0;
        for (int64_t q = 1; q <= n; ++q) {
            for (uint64_t e = into_[s0 + q]; e < into_[s0 + q + 1]; ++e) {
                const double v = best[q - length_[e]] + score_of(piece_[e], scores, n_scores);
                if (e == into_[s0 + q] || v > best[q]) {  // the first of equal bests stays
                    best[q] = v;
                    back[q] = e;
                }
            }
        }
        for (int64_t q = n; q > 0; q -= length_[back[q]])
            if (piece_[back[q]] >= 0) freq[piece_[back[q]]] += count_[w];
    }
    return freq;
}

UnigramLattice::SecondBest UnigramLattice::second_best(const int64_t* reps, const int64_t* lengths, size_t n,
                                                       const double* scores, size_t n_scores) const {
    SecondBest out;
    out.score.resize(n);
    std::vector<double> best;
    std::vector<uint64_t> back;
    for (size_t i = 0; i < n; ++i) {
        const int64_t r = reps[i], size = lengths[i];
        best.assign(size + 1, kNone);
        back.assign(size + 1, 0);
        best[0] = 0.0;
        for (int64_t k = 1; k <= size; ++k) {  // the edges inside the window, but not the piece itself
            bool first = true;
            for (uint64_t e = into_[r + k]; e < into_[r + k + 1]; ++e) {
                if (length_[e] > k || (k == size && length_[e] == size)) continue;
                const double v = best[k - length_[e]] + score_of(piece_[e], scores, n_scores);
                if (first || v > best[k]) {
                    best[k] = v;
                    back[k] = e;
                }
                first = false;
            }
        }
        out.score[i] = best[size];
        for (int64_t k = size; k > 0; k -= length_[back[k]]) {
            out.win.push_back(static_cast<int64_t>(i));
            out.token.push_back(piece_[back[k]]);
        }
    }
    return out;
}

size_t UnigramLattice::bytes() const {
    return start_.capacity() * 8 + end_.capacity() * 8 + count_.capacity() * 8 + into_.capacity() * 8 +
           length_.capacity() * 2 + piece_.capacity() * 4;
}

}  // namespace llmlab
