// What an encode returns, and the runtime stages that reshape it: merging, truncation with overflowing
// windows, the template and byte-level post-processors, padding.
// References (ported line for line): encoding.py, postprocess.py, templates.py (HF tokenizers encoding.rs,
// utils/truncation.rs, utils/padding.rs, processors/).
#pragma once

#include "common.h"

namespace llmlab {

// A token's string: >= 0 an index into the core's token table, < 0 (~i) an entry of `customs` (a piece of
// text, e.g. an added token as written).
struct Enc {
    std::vector<int32_t> ids, tokens, type_ids;
    std::vector<std::pair<int32_t, int32_t>> offsets;
    std::vector<uint8_t> attention, special;
    std::vector<Str> customs;
    std::vector<Enc> overflowing;

    size_t size() const { return ids.size(); }
    void clear() {  // (keeps the capacity: an Enc reused for many texts allocates only while it grows)
        ids.clear();
        tokens.clear();
        type_ids.clear();
        offsets.clear();
        attention.clear();
        special.clear();
        customs.clear();
        overflowing.clear();
    }
    void reserve(size_t n) {
        ids.reserve(n);
        tokens.reserve(n);
        type_ids.reserve(n);
        offsets.reserve(n);
        attention.reserve(n);
        special.reserve(n);
    }
    void push(int32_t id, int32_t token, int32_t start, int32_t end, int32_t type_id) {
        ids.push_back(id);
        tokens.push_back(token);
        offsets.emplace_back(start, end);
        type_ids.push_back(type_id);
        attention.push_back(1);
        special.push_back(0);
    }
    int32_t custom(Str text) {
        customs.push_back(std::move(text));
        return ~static_cast<int32_t>(customs.size() - 1);
    }
    void append(const Enc& other);  // fields only, not the windows
    // Special tokens (table entries, offsets (0, 0)) inserted before token `at`.
    void insert_special(size_t at, const std::vector<int32_t>& ids, const std::vector<int32_t>& tokens,
                        int32_t type_id);
    Enc slice(size_t start, size_t stop) const;
};

Enc merge(const Enc& a, const Enc& b);
Enc merge_all(std::vector<Enc>& parts);

struct Truncation {
    int64_t max_length = 0, stride = 0;
    int strategy = 0;  // 0 longest_first, 1 only_first, 2 only_second
    bool left = false;
};
// False where Python raises (the text is then left to it, which raises the same error).
bool truncate(Enc& e, int64_t max_length, int64_t stride, bool left);
bool truncate_pair(Enc& a, Enc* b, const Truncation& t, int64_t n_added);

struct Padding {
    bool left = false;
    int32_t pad_id = 0, pad_type_id = 0, pad_token = 0;  // pad_token: an index into the token table
    int64_t length = -1, multiple = 0;                   // length -1: the longest of the batch
};
void pad(Enc& e, size_t length, const Padding& p);
void pad_batch(const std::vector<Enc*>& encs, const Padding& p);

// TemplateProcessing (and BertProcessing, the same template): sequences and special tokens in order.
struct TemplatePiece {
    bool sequence;    // $A / $B, else a special token
    int which;        // sequence 0 (A) or 1 (B)
    int32_t type_id;
    std::vector<int32_t> ids, tokens;  // a special token's ids and token-table entries
};
// How many space characters a token-table entry starts and ends with (for trimming offsets): both in one
// place, as every token reads both (apart, each was a cache miss of its own: most of trim_offsets' time in a
// perf profile of cold BPE batches).
struct SpaceEnds {
    uint16_t lead = 0, trail = 0;
};
SpaceEnds space_ends(View s, const std::vector<char32_t>& spaces);  // `spaces`: the space characters

struct PostProcessor {
    enum Kind { kNone, kTemplate, kByteLevel } kind = kNone;
    std::vector<TemplatePiece> single, pair;
    bool trim_offsets = false, add_prefix_space = false;  // byte level

    int64_t added_tokens(bool is_pair) const;
    // `ends`: each token-table entry's spaces (`spaces`: the space characters).
    Enc process(Enc& a, Enc* b, bool add_special_tokens, const std::vector<SpaceEnds>& ends,
                const std::vector<char32_t>& spaces) const;
};

}  // namespace llmlab
