// Word counting for the trainers: normalize, pre-tokenize and count the words of many lines in one table.
//
// Reference: counting.py `count_chunk` (normalizer.normalize, pretokenizer.raw_words, then map_word once per
// distinct word), proven equal by tests/tokenizer/test_core_count.py. The normalizer and pre-tokenizer are the
// encoder's own (normalizer.h, pretokenizer.h, built from the same tables), so the trainers count the words
// that encoding will see. A line holding a character the normalizer's tables leave to Python is not counted
// here: `add` says so and the caller counts it in Python.
#pragma once

#include <array>
#include <memory>

#include "normalizer.h"
#include "pretokenizer.h"

namespace llmlab {

class WordCounter {
  public:
    // `byte_level`: each word is counted as GPT-2's byte characters of its UTF-8 bytes (`byte_chars`).
    WordCounter(std::unique_ptr<Normalizer> normalizer, std::unique_ptr<PreTokenizer> pre_tokenizer,
                bool byte_level, const std::array<char32_t, 256>& byte_chars);

    // Counts the words of one line; false (nothing counted) when the normalizer must leave it to Python.
    bool add(View line);
    // Calls visit(word, count) for every distinct word (byte-level mapped where so), in no set order, then
    // empties the table.
    template <class Visit>
    void drain(Visit&& visit) {
        for (const Slot& s : slots_)
            if (s.count) visit(mapped(View(arena_).substr(s.offset, s.length)), s.count);
        clear();
    }
    // The distinct words (byte-level mapped where so) ascending by code point, as word_table.py's arrays: the
    // code points one word after the other, each word's length and count; then empties the table.
    void drain_sorted(std::vector<uint32_t>& codes, std::vector<int64_t>& lengths, std::vector<int64_t>& counts);
    size_t size() const { return size_; }
    size_t bytes() const { return slots_.capacity() * sizeof(Slot) + arena_.capacity() * sizeof(char32_t); }

  private:
    struct Slot {
        uint64_t hash = 0;
        uint64_t offset = 0;
        int64_t count = 0;  // 0: an empty slot
        uint32_t length = 0;
    };
    void count(View word);
    void grow();
    void clear();
    View mapped(View word);

    std::unique_ptr<Normalizer> normalizer_;
    std::unique_ptr<PreTokenizer> pre_tokenizer_;
    bool byte_level_;
    std::array<char32_t, 256> byte_chars_;
    std::vector<Slot> slots_;  // open addressing, linear probing, at most half full
    Str arena_;                // the distinct words, one after the other
    size_t size_ = 0;
    Str normalized_, full_, word_;  // scratch
    std::vector<int32_t> align_;
    std::vector<Word> words_;
};

}  // namespace llmlab
