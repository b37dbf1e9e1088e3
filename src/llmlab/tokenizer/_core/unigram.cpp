// Unigram model; see unigram.h. Reference: src/llmlab/tokenizer/unigram/model.py (`_viterbi`, `_finish`).
#include "unigram.h"

#include <limits>

namespace llmlab {

namespace {
constexpr int32_t kUnk = -1;  // an unknown node of the lattice, before fusing / byte fallback
}  // namespace

Unigram::Unigram(UnigramConfig config) : pieces_(std::move(config.matched)), config_(std::move(config)) {}

bool Unigram::tokenize(View word, std::vector<Token>& out) const {
    const int32_t n = static_cast<int32_t>(word.size());
    const size_t mark = out.size();
    // lattice[e]: the best path to position e (its score, where its last piece starts, that piece's id), and
    // path: the best path's pieces from the end; both on the stack for words of up to kLocal characters
    struct Node {
        double best;
        int32_t start, id;
    };
    constexpr int32_t kLocal = 64;
    Node local_lattice[kLocal + 1];
    Token local_path[kLocal];
    std::vector<Node> heap_lattice;
    std::vector<Token> heap_path;
    Node* lattice = local_lattice;
    Token* path = local_path;
    if (n > kLocal) {
        heap_lattice.resize(n + 1);
        heap_path.resize(n);
        lattice = heap_lattice.data();
        path = heap_path.data();
    }
    lattice[0] = {0.0, 0, kUnk};
    for (int32_t e = 1; e <= n; ++e) lattice[e] = {-std::numeric_limits<double>::infinity(), 0, kUnk};
    for (int32_t s = 0; s < n; ++s) {
        const double base = lattice[s].best;
        int32_t node = pieces_.child(0, word[s]);
        int32_t pid = node >= 0 ? pieces_.value(node) : -1;
        // one character: its piece, or an unknown node (the first candidate to reach s + 1)
        double score = base + (pid < 0 ? config_.unk_score : config_.scores[pid]);
        if (score > lattice[s + 1].best) lattice[s + 1] = {score, s, pid < 0 ? kUnk : pid};
        if (node < 0) continue;
        for (int32_t e = s + 2; e <= n; ++e) {
            node = pieces_.child(node, word[e - 1]);
            if (node < 0) break;
            pid = pieces_.value(node);
            if (pid >= 0 && base + config_.scores[pid] > lattice[e].best)
                lattice[e] = {base + config_.scores[pid], s, pid};
        }
    }
    int32_t count = 0;
    for (int32_t e = n; e > 0; e = lattice[e].start) path[count++] = {lattice[e].id, lattice[e].start, e};
    for (int32_t k = count - 1; k >= 0; --k) {  // unknown nodes: byte tokens or fused unk
        const Token& t = path[k];
        if (t.id != kUnk) {
            out.push_back(t);
        } else if (config_.byte_fallback) {
            std::string bytes;
            for (int32_t i = t.start; i < t.end; ++i) append_utf8(bytes, word[i]);
            for (unsigned char b : bytes) out.push_back({config_.byte_ids[b], t.start, t.end});
        } else if (config_.unk_id < 0) {
            return false;
        } else if (out.size() > mark && out.back().id == config_.unk_id && out.back().end == t.start) {
            out.back().end = t.end;
        } else {
            out.push_back({config_.unk_id, t.start, t.end});
        }
    }
    return true;
}

}  // namespace llmlab
