// Encodings and the runtime stages; see encoding.h. References: encoding.py, postprocess.py, templates.py.
#include "encoding.h"

#include <algorithm>

namespace llmlab {

void Enc::append(const Enc& o) {
    const int32_t shift = static_cast<int32_t>(customs.size());
    ids.insert(ids.end(), o.ids.begin(), o.ids.end());
    for (int32_t t : o.tokens) tokens.push_back(t >= 0 ? t : ~(~t + shift));
    type_ids.insert(type_ids.end(), o.type_ids.begin(), o.type_ids.end());
    offsets.insert(offsets.end(), o.offsets.begin(), o.offsets.end());
    attention.insert(attention.end(), o.attention.begin(), o.attention.end());
    special.insert(special.end(), o.special.begin(), o.special.end());
    customs.insert(customs.end(), o.customs.begin(), o.customs.end());
}

void Enc::insert_special(size_t at, const std::vector<int32_t>& new_ids, const std::vector<int32_t>& new_tokens,
                         int32_t type_id) {
    const size_t k = new_ids.size();
    ids.insert(ids.begin() + at, new_ids.begin(), new_ids.end());
    tokens.insert(tokens.begin() + at, new_tokens.begin(), new_tokens.end());
    type_ids.insert(type_ids.begin() + at, k, type_id);
    offsets.insert(offsets.begin() + at, k, {0, 0});
    attention.insert(attention.begin() + at, k, 1);
    special.insert(special.begin() + at, k, 1);
}

Enc Enc::slice(size_t start, size_t stop) const {
    Enc out;
    out.ids.assign(ids.begin() + start, ids.begin() + stop);
    out.tokens.assign(tokens.begin() + start, tokens.begin() + stop);
    out.type_ids.assign(type_ids.begin() + start, type_ids.begin() + stop);
    out.offsets.assign(offsets.begin() + start, offsets.begin() + stop);
    out.attention.assign(attention.begin() + start, attention.begin() + stop);
    out.special.assign(special.begin() + start, special.begin() + stop);
    out.customs = customs;
    return out;
}

// HF's Encoding::merge_with: every window of `a` with `b` (and with each window of `b`), then `a` with
// each window of `b`.
Enc merge(const Enc& a, const Enc& b) {
    Enc out;
    for (const Enc& window : a.overflowing) {
        out.overflowing.push_back(merge(window, b));
        for (const Enc& other : b.overflowing) out.overflowing.push_back(merge(window, other));
    }
    for (const Enc& other : b.overflowing) out.overflowing.push_back(merge(a, other));
    out.append(a);
    out.append(b);
    return out;
}

Enc merge_all(std::vector<Enc>& parts) {
    bool windows = false;
    for (const Enc& e : parts) windows = windows || !e.overflowing.empty();
    if (!windows) {
        if (parts.size() == 1) return std::move(parts[0]);
        Enc out = std::move(parts[0]);
        for (size_t i = 1; i < parts.size(); ++i) out.append(parts[i]);
        return out;
    }
    Enc out = parts[0];
    for (size_t i = 1; i < parts.size(); ++i) out = merge(out, parts[i]);
    return parts.size() > 1 ? out : merge(out, Enc{});
}

bool truncate(Enc& e, int64_t max_length, int64_t stride, bool left) {
    const int64_t n = static_cast<int64_t>(e.size());
    if (max_length >= n) return true;
    if (max_length == 0) {
        Enc out;
        out.overflowing.push_back(std::move(e));
        e = std::move(out);
        return true;
    }
    if (stride >= max_length) return false;
    const int64_t step = max_length - stride;
    std::vector<std::pair<int64_t, int64_t>> windows;
    if (!left) {
        for (int64_t start = 0; start < n; start += step) {
            windows.emplace_back(start, std::min(start + max_length, n));
            if (windows.back().second == n) break;
        }
    } else {
        for (int64_t stop = n; stop > 0; stop -= step) {
            windows.emplace_back(std::max<int64_t>(stop - max_length, 0), stop);
            if (windows.back().first == 0) break;
        }
    }
    Enc out = e.slice(windows[0].first, windows[0].second);
    for (size_t w = 1; w < windows.size(); ++w) out.overflowing.push_back(e.slice(windows[w].first, windows[w].second));
    e = std::move(out);
    return true;
}

bool truncate_pair(Enc& a, Enc* b, const Truncation& t, int64_t n_added) {
    if (t.max_length < n_added) return false;
    const int64_t max_length = t.max_length - n_added;
    auto cut = [&](Enc& e, int64_t n) { return truncate(e, n, t.stride, t.left); };
    if (max_length == 0) return cut(a, 0) && (!b || cut(*b, 0));
    const int64_t la = static_cast<int64_t>(a.size()), lb = b ? static_cast<int64_t>(b->size()) : 0;
    const int64_t total = la + lb;
    if (total <= max_length) return true;
    if (t.strategy == 0) {  // longest_first
        if (!b) return cut(a, max_length);
        int64_t n1 = std::min(la, lb), n2 = std::max(la, lb);
        n2 = n1 > max_length ? n1 : std::max(n1, max_length - n1);
        if (n1 + n2 > max_length) {
            n1 = max_length / 2;
            n2 = max_length / 2 + max_length % 2;
        }
        if (la > lb) std::swap(n1, n2);
        return cut(a, n1) && cut(*b, n2);
    }
    if (t.strategy == 2 && !b) return false;
    Enc& target = t.strategy == 1 ? a : *b;
    const int64_t remove = total - max_length;
    if (static_cast<int64_t>(target.size()) <= remove) return false;
    return cut(target, static_cast<int64_t>(target.size()) - remove);
}

void pad(Enc& e, size_t length, const Padding& p) {
    for (Enc& window : e.overflowing) pad(window, length, p);
    if (length <= e.size()) return;
    const size_t k = length - e.size();
    auto fill = [&](auto& values, auto filler) {
        values.insert(p.left ? values.begin() : values.end(), k, filler);
    };
    fill(e.ids, p.pad_id);
    fill(e.tokens, p.pad_token);
    fill(e.offsets, std::pair<int32_t, int32_t>(0, 0));
    fill(e.type_ids, p.pad_type_id);
    fill(e.attention, static_cast<uint8_t>(0));
    fill(e.special, static_cast<uint8_t>(1));
}

void pad_batch(const std::vector<Enc*>& encs, const Padding& p) {
    if (encs.empty()) return;
    int64_t length = p.length;
    if (length < 0) {
        length = 0;
        for (const Enc* e : encs) length = std::max<int64_t>(length, static_cast<int64_t>(e->size()));
    }
    if (p.multiple > 0 && length % p.multiple) length += p.multiple - length % p.multiple;
    for (Enc* e : encs) pad(*e, static_cast<size_t>(length), p);
}

namespace {

// postprocess.py `trim_offsets`: offsets leave out each token's leading and trailing spaces; the one space
// add_prefix_space put before the first token (or one starting at 0) stays. Each token on its own.
void trim_offsets(Enc& e, bool add_prefix_space, const std::vector<SpaceEnds>& ends,
                  const std::vector<char32_t>& spaces) {
    const size_t n = e.size();
    for (size_t i = 0; i < n; ++i) {
        auto& [start, end] = e.offsets[i];
        const int32_t t = e.tokens[i];
        const SpaceEnds s = t >= 0 ? ends[t] : space_ends(e.customs[~t], spaces);
        const int lead = s.lead, trail = s.trail;
        if (lead && !(add_prefix_space && (i == 0 || start == 0) && lead == 1)) start = std::min(start + lead, end);
        if (trail && end >= trail) end = std::max(end - trail, start);
    }
    for (Enc& window : e.overflowing) trim_offsets(window, add_prefix_space, ends, spaces);
}

Enc special_part(const TemplatePiece& piece) {
    Enc e;
    for (size_t i = 0; i < piece.ids.size(); ++i) {
        e.push(piece.ids[i], piece.tokens[i], 0, 0, piece.type_id);
        e.special.back() = 1;
    }
    return e;
}

}  // namespace

SpaceEnds space_ends(View s, const std::vector<char32_t>& spaces) {
    auto is_space = [&](char32_t c) { return std::find(spaces.begin(), spaces.end(), c) != spaces.end(); };
    size_t lead = 0, trail = 0;
    while (lead < s.size() && is_space(s[lead])) ++lead;
    while (trail < s.size() && is_space(s[s.size() - 1 - trail])) ++trail;
    return {static_cast<uint16_t>(lead), static_cast<uint16_t>(trail)};
}

int64_t PostProcessor::added_tokens(bool is_pair) const {
    if (kind != kTemplate) return 0;
    int64_t n = 0;
    for (const TemplatePiece& piece : is_pair ? pair : single)
        if (!piece.sequence) n += static_cast<int64_t>(piece.ids.size());
    return n;
}

Enc PostProcessor::process(Enc& a, Enc* b, bool add_special_tokens, const std::vector<SpaceEnds>& ends,
                           const std::vector<char32_t>& spaces) const {
    if (kind == kNone) return b ? merge(a, *b) : std::move(a);
    if (kind == kByteLevel) {
        if (trim_offsets) {
            llmlab::trim_offsets(a, add_prefix_space, ends, spaces);
            if (b) llmlab::trim_offsets(*b, add_prefix_space, ends, spaces);
        }
        if (!b && a.overflowing.empty()) return std::move(a);
        std::vector<Enc> parts;
        parts.push_back(std::move(a));
        if (b) parts.push_back(std::move(*b));
        return merge_all(parts);
    }
    const auto& pieces = b ? pair : single;
    Enc* seqs[2] = {&a, b};
    const auto sequences = std::count_if(pieces.begin(), pieces.end(), [](const auto& p) { return p.sequence; });
    if (!b && a.overflowing.empty() && sequences == 1) {  // one sequence, no windows: the specials around it
        size_t at = 0;                   // where the next piece goes: before the sequence, then at the end
        for (const TemplatePiece& piece : pieces) {
            if (piece.sequence) {
                std::fill(a.type_ids.begin() + at, a.type_ids.end(), piece.type_id);
                at = a.size();
            } else if (add_special_tokens) {
                a.insert_special(at, piece.ids, piece.tokens, piece.type_id);
                at += piece.ids.size();
            }
        }
        return std::move(a);
    }
    if (a.overflowing.empty() && (!b || b->overflowing.empty())) {  // no windows: concatenate directly
        Enc out;
        out.reserve(a.size() + (b ? b->size() : 0) + 4);
        for (const TemplatePiece& piece : pieces) {
            if (piece.sequence) {
                const size_t from = out.size();
                out.append(*seqs[piece.which]);
                std::fill(out.type_ids.begin() + from, out.type_ids.end(), piece.type_id);
            } else if (add_special_tokens) {
                out.append(special_part(piece));
            }
        }
        return out;
    }
    std::vector<Enc> parts;
    for (const TemplatePiece& piece : pieces) {
        if (piece.sequence) {  // the windows keep their own type ids (as HF)
            parts.push_back(*seqs[piece.which]);
            std::fill(parts.back().type_ids.begin(), parts.back().type_ids.end(), piece.type_id);
        } else if (add_special_tokens) {
            parts.push_back(special_part(piece));
        }
    }
    return merge_all(parts);
}

}  // namespace llmlab
