// Per-character normalization with alignment; see normalizer.h. Reference: normalize.py.
#include "normalizer.h"

namespace llmlab {

bool Normalizer::hard(View text) const {
    for (char32_t c : text)
        if (c >= 0x80 && classes_[c] == kHard) return true;
    return false;
}

void Normalizer::normalize(View text, Str& out, std::vector<int32_t>& align) const {
    out.clear();
    align.clear();
    size_t i = 0;
    while (i < text.size() && classes_[text[i]] == kSame) ++i;
    if (i == text.size()) {  // unchanged: the identity
        out.assign(text);
        return;
    }
    out.reserve(text.size() + 8);
    out.append(text.substr(0, i));
    bool one_to_one = true;  // every character became one character in place: still the identity
    for (size_t j = i; j < text.size(); ++j) {
        const char32_t c = text[j];
        switch (classes_[c]) {
            case kSame:
                out += c;
                break;
            case kSpaced:
                out += U' ';
                out += c;
                out += U' ';
                one_to_one = false;
                break;
            case kDropped:
                one_to_one = false;
                break;
            default: {
                const Str& form = forms_.at(c);
                out += form;
                one_to_one = one_to_one && form.size() == 1;
            }
        }
    }
    if (one_to_one) return;
    align.reserve(out.size());
    for (size_t j = 0; j < text.size(); ++j) {
        const char32_t c = text[j];
        size_t len = 1;
        switch (classes_[c]) {
            case kSame:
                break;
            case kSpaced:
                len = 3;
                break;
            case kDropped:
                len = 0;
                break;
            default:
                len = forms_.at(c).size();
        }
        align.insert(align.end(), len, static_cast<int32_t>(j));
    }
}

}  // namespace llmlab
