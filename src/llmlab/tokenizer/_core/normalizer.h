// The normalizer stage as a table of per-character forms, with the alignment offsets need.
//
// Reference: normalize.py, whose `normalize_aligned` aligns per character when normalizing character by
// character rebuilds the text. Python computes every character's form once (core_tables.py) and marks the
// characters where that may not hold (combining marks that reorder or compose across characters, lone
// surrogates): a text holding one of those is left to the Python path, so the two never disagree.
#pragma once

#include <array>

#include "chartable.h"
#include "common.h"

namespace llmlab {

// Each mapped character's form, in flat arrays sorted by code point: a few bytes a form (a hash node and a
// string of its own would take ~50), found by binary search (only characters outside Latin-1 look here).
class Forms {
  public:
    void add(char32_t c, View form) {
        codes_.push_back(c);
        ends_.push_back(static_cast<uint32_t>((chars_ += form).size()));
    }
    void sort();                   // by code point, once every form is added
    View find(char32_t c) const;  // the form of `c` (empty: none)
    size_t size() const { return codes_.size(); }
    char32_t code(size_t i) const { return codes_[i]; }
    View form(size_t i) const {
        const uint32_t start = i ? ends_[i - 1] : 0;
        return View(chars_).substr(start, ends_[i] - start);
    }

  private:
    std::vector<char32_t> codes_;
    std::vector<uint32_t> ends_;  // form i is chars_[ends_[i - 1], ends_[i])
    Str chars_;
};

class Normalizer {
  public:
    enum Class : uint8_t { kSame = 0, kMapped = 1, kHard = 2, kSpaced = 3, kDropped = 4 };

    Normalizer(CharTable classes, Forms forms) : classes_(std::move(classes)), forms_(std::move(forms)) {
        forms_.sort();
        for (size_t i = 0; i < forms_.size(); ++i)
            if (forms_.code(i) < kLatin && forms_.form(i).size() == 1) latin_[forms_.code(i)] = forms_.form(i)[0];
        for (char32_t c = 0; c < 0x80; ++c) ascii_same_ = ascii_same_ && classes_[c] == kSame;
    }

    // Whether the text holds a character only the Python path handles.
    bool hard(View text) const;
    // Whether normalizing leaves the text as it is, known without a lookup per character (ASCII text where
    // this normalizer keeps ASCII, e.g. NFKC): false does not mean that it changes.
    bool unchanged(View text) const { return ascii_same_ && all_ascii(text); }
    // Normalizes `text` into `out`; `align` gets, per output character, the index of the input character it
    // came from, and is left empty when the alignment is the identity (as Python's None).
    void normalize(View text, Str& out, std::vector<int32_t>& align) const;

  private:
    static constexpr char32_t kLatin = 0x100;
    CharTable classes_;
    Forms forms_;
    std::array<char32_t, kLatin> latin_{};  // the one-character forms of Latin-1 characters (0: none)
    bool ascii_same_ = true;                // every ASCII character is kSame
};

}  // namespace llmlab
