// Added tokens ([CLS], <|endoftext|>, ...) found in text before the model sees it: leftmost-longest, with
// HF's single_word / lstrip / rstrip rules. Reference: added_tokens.py (`AddedTokenMatcher.split`).
#pragma once

#include "chartable.h"
#include "common.h"
#include "trie.h"

namespace llmlab {

struct AddedToken {
    Str content;
    int32_t id;
    int32_t ref;  // its string in the token table
    bool single_word, lstrip, rstrip;
};

struct Piece {
    int32_t start, end;
    int32_t token;  // index into the matcher's tokens, or -1 for text between them
};

class AddedMatcher {
  public:
    AddedMatcher() = default;
    AddedMatcher(std::vector<AddedToken> tokens, const CharTable* word_chars, const CharTable* spaces);

    bool empty() const { return tokens_.empty(); }
    const AddedToken& token(int32_t i) const { return tokens_[i]; }
    // Pieces covering `text`; false (and no pieces) when no token occurs in it.
    bool split(View text, std::vector<Piece>& pieces) const;

  private:
    int32_t longest_at(View text, size_t i, size_t& end) const;
    size_t next_start(View text, size_t i) const;

    std::vector<AddedToken> tokens_;
    Trie trie_;
    std::vector<uint8_t> first_;  // code points < 0x10000 that start a token (others: checked in the trie)
    bool one_first_ = false;      // every token starts with the same character
    const CharTable* word_chars_ = nullptr;
    const CharTable* spaces_ = nullptr;
};

}  // namespace llmlab
