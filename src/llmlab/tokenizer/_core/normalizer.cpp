// Per-character normalization with alignment; see normalizer.h. Reference: normalize.py.
#include "normalizer.h"

#include <algorithm>
#include <numeric>

namespace llmlab {

void Forms::sort() {
    if (std::is_sorted(codes_.begin(), codes_.end())) return;
    std::vector<uint32_t> order(codes_.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return codes_[a] < codes_[b]; });
    Forms sorted;
    for (uint32_t i : order) sorted.add(codes_[i], form(i));
    *this = std::move(sorted);
}

View Forms::find(char32_t c) const {
    const auto it = std::lower_bound(codes_.begin(), codes_.end(), c);
    return it != codes_.end() && *it == c ? form(static_cast<size_t>(it - codes_.begin())) : View();
}

bool Normalizer::hard(View text) const {
    if (all_ascii(text)) return false;  // (no ASCII character is hard)
    for (char32_t c : text)
        if (c >= 0x80 && classes_[c] == kHard) return true;
    return false;
}

// One pass. While every character becomes one character in place the alignment is the identity and is not
// written; at the first that does not, the alignment so far is filled in and kept from then on.
void Normalizer::normalize(View text, Str& out, std::vector<int32_t>& align) const {
    out.clear();
    align.clear();
    if (unchanged(text)) {
        out.assign(text);
        return;
    }
    size_t i = 0;
    while (i < text.size() && classes_[text[i]] == kSame) ++i;
    if (i == text.size()) {  // unchanged: the identity
        out.assign(text);
        return;
    }
    out.reserve(text.size() + text.size() / 2 + 8);
    out.append(text.substr(0, i));
    bool one_to_one = true;
    auto diverge = [&]() {  // from here on the alignment is written
        if (!one_to_one) return;
        one_to_one = false;
        align.reserve(out.capacity());
        for (size_t k = 0; k < out.size(); ++k) align.push_back(static_cast<int32_t>(k));
    };
    for (size_t j = i; j < text.size(); ++j) {
        const char32_t c = text[j];
        const int32_t at = static_cast<int32_t>(j);
        switch (classes_[c]) {
            case kSame:
                out.push_back(c);
                if (!one_to_one) align.push_back(at);
                break;
            case kSpaced:
                diverge();
                out.append({U' ', c, U' '});
                align.insert(align.end(), {at, at, at});
                break;
            case kDropped:
                diverge();
                break;
            default: {
                const char32_t single = c < kLatin ? latin_[c] : 0;
                if (single) {  // a one-character form of Latin-1 (upper case): no hash lookup
                    out.push_back(single);
                    if (!one_to_one) align.push_back(at);
                    break;
                }
                const View form = forms_.find(c);
                if (form.size() != 1) diverge();
                out += form;
                if (!one_to_one) align.insert(align.end(), form.size(), at);
            }
        }
    }
}

}  // namespace llmlab
