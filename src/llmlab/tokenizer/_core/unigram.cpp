// Unigram model; see unigram.h. Reference: src/llmlab/tokenizer/unigram/model.py (`_viterbi`, `_finish`).
#include "unigram.h"

#include <limits>

namespace llmlab {

namespace {
constexpr int32_t kUnk = -1;  // an unknown node of the lattice, before fusing / byte fallback
}  // namespace

Unigram::Unigram(const UnigramConfig& config) : config_(config) {
    for (const auto& [piece, id] : config.matched) pieces_.insert(piece, id);
}

bool Unigram::tokenize(View word, std::vector<Token>& out) const {
    const int32_t n = static_cast<int32_t>(word.size());
    const size_t mark = out.size();
    std::vector<double> best(n + 1, -std::numeric_limits<double>::infinity());
    std::vector<int32_t> start(n + 1, 0), ids(n + 1, kUnk);
    best[0] = 0.0;
    for (int32_t s = 0; s < n; ++s) {
        const double base = best[s];
        int32_t node = pieces_.child(0, word[s]);
        int32_t pid = node >= 0 ? pieces_.value(node) : -1;
        // one character: its piece, or an unknown node (the first candidate to reach s + 1)
        double score = base + (pid < 0 ? config_.unk_score : config_.scores[pid]);
        if (score > best[s + 1]) {
            best[s + 1] = score;
            start[s + 1] = s;
            ids[s + 1] = pid < 0 ? kUnk : pid;
        }
        if (node < 0) continue;
        for (int32_t e = s + 2; e <= n; ++e) {
            node = pieces_.child(node, word[e - 1]);
            if (node < 0) break;
            pid = pieces_.value(node);
            if (pid >= 0 && base + config_.scores[pid] > best[e]) {
                best[e] = base + config_.scores[pid];
                start[e] = s;
                ids[e] = pid;
            }
        }
    }
    std::vector<Token> path;
    for (int32_t e = n; e > 0; e = start[e]) path.push_back({ids[e], start[e], e});
    for (auto it = path.rbegin(); it != path.rend(); ++it) {  // unknown nodes: byte tokens or fused unk
        const Token& t = *it;
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
