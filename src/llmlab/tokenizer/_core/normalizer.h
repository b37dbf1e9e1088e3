// The normalizer stage as a table of per-character forms, with the alignment offsets need.
//
// Reference: normalize.py, whose `normalize_aligned` aligns per character when normalizing character by
// character rebuilds the text. Python computes every character's form once (core_tables.py) and marks the
// characters where that may not hold (combining marks that reorder or compose across characters, lone
// surrogates): a text holding one of those is left to the Python path, so the two never disagree.
#pragma once

#include <array>
#include <unordered_map>

#include "chartable.h"
#include "common.h"

namespace llmlab {

class Normalizer {
  public:
    enum Class : uint8_t { kSame = 0, kMapped = 1, kHard = 2, kSpaced = 3, kDropped = 4 };

    Normalizer(CharTable classes, std::unordered_map<char32_t, Str> forms)
        : classes_(std::move(classes)), forms_(std::move(forms)) {
        for (const auto& [c, form] : forms_)
            if (c < kLatin && form.size() == 1) latin_[c] = form[0];
    }

    // Whether the text holds a character only the Python path handles.
    bool hard(View text) const;
    // Normalizes `text` into `out`; `align` gets, per output character, the index of the input character it
    // came from, and is left empty when the alignment is the identity (as Python's None).
    void normalize(View text, Str& out, std::vector<int32_t>& align) const;

  private:
    static constexpr char32_t kLatin = 0x100;
    CharTable classes_;
    std::unordered_map<char32_t, Str> forms_;
    std::array<char32_t, kLatin> latin_{};  // the one-character forms of Latin-1 characters (0: none)
};

}  // namespace llmlab
