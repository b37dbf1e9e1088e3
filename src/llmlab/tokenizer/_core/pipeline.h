// The whole encode of one text: added tokens, normalizer, pre-tokenizer, model (with the word cache),
// offsets back into the text, then truncation, post-processing and padding (many texts on threads: batch.h).
//
// Reference: encoder.py (SequenceEncoder) and pipeline.py (Tokenizer.encode / encode_batch), ported step for
// step. Every function returns false where the text must go to the Python path instead: a character the
// tables mark as hard, a missing unk token, a truncation setting Python rejects (it raises the error).
#pragma once

#include <array>
#include <memory>

#include "added_tokens.h"
#include "encoding.h"
#include "model.h"
#include "normalizer.h"
#include "pretokenizer.h"
#include "word_cache.h"

namespace llmlab {

// Scratch buffers of one thread, and where its new word splits go.
struct Workspace {
    Str normalized, full, model_word;
    std::vector<int32_t> align, begun;
    std::vector<Piece> raw_pieces, normalized_pieces;
    std::vector<Word> words;
    std::vector<Token> tokens;
    bool holds_cache = true;  // this thread holds the word cache's mutex alone (else shared: see WordCache)
    WordCache::Share cache_share;  // (shared) its part of the room for new words
};

struct Input {
    Str text, pair;
    bool has_pair = false;
};

class Pipeline {
  public:
    std::unique_ptr<Normalizer> normalizer;
    std::unique_ptr<PreTokenizer> pre_tokenizer;
    std::unique_ptr<Model> model;
    AddedMatcher raw_added, normalized_added;
    CharTable word_chars, spaces;  // for the added tokens' single_word / lstrip / rstrip
    bool byte_level = false;        // the model sees each word's UTF-8 bytes as GPT-2 characters
    std::array<char32_t, 256> byte_chars{};
    int32_t unk_as_text = -1;       // Unigram: this id's token string is the text it covers
    WordCache cache;

    // Post-processing and runtime settings.
    PostProcessor post;
    bool truncate = false, pad = false;
    Truncation truncation;
    Padding padding;
    std::vector<SpaceEnds> space_ends;  // of each token-table entry (for trimming offsets)
    std::vector<char32_t> spaces_list;

    // One input -> its final encoding in `out` (cleared first; its capacity is reused), padded to itself when
    // padding is on and `pad_alone`. Many inputs on threads: batch.h.
    bool encode(const Input& in, bool add_special_tokens, bool pad_alone, Enc& out, Workspace& ws);
    // Once the model is set: caches the one-character words it splits into their own token, before any text.
    void cache_single_characters();

  private:
    bool encode_sequence(View text, int32_t type_id, Enc& out, Workspace& ws);
    bool encode_piece(View raw, int32_t base, int32_t type_id, Enc& out, Workspace& ws);
    bool encode_words(View text, int32_t shift, bool first, int32_t type_id, Enc& out, Workspace& ws);
    bool cached_split(const WordCache::Key& key, WordCache::Hit& hit) const;
    bool split_word(const WordCache::Key& key, Workspace& ws, WordCache::Hit& hit);
    View byte_level_word(View word, Workspace& ws) const;
    bool is_hard(const Input& in) const;
};

}  // namespace llmlab
