// A class (0-255) for every code point, as a two-stage table: 256-entry blocks, identical blocks shared.
//
// The core knows no Unicode property itself: each table is computed in Python from the very stages the pure
// path runs (core_tables.py) and handed over as runs (start code point, class), so both paths classify alike.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

namespace llmlab {

class CharTable {
  public:
    static constexpr uint32_t kSize = 0x110000;

    // `starts` ascending, starts[0] == 0; code points [starts[i], starts[i + 1]) have class values[i].
    void build(const std::vector<uint32_t>& starts, const std::vector<uint8_t>& values) {
        std::map<std::vector<uint8_t>, uint16_t> seen;
        index_.assign(kSize >> 8, 0);
        blocks_.clear();
        std::vector<uint8_t> block(256);
        size_t run = 0;  // the run holding the code point at hand
        for (uint32_t b = 0; b < (kSize >> 8); ++b) {
            for (uint32_t k = 0; k < 256; ++k) {
                while (run + 1 < starts.size() && starts[run + 1] <= ((b << 8) | k)) ++run;
                block[k] = run < values.size() ? values[run] : 0;
            }
            auto it = seen.find(block);
            if (it == seen.end()) {
                it = seen.emplace(block, static_cast<uint16_t>(blocks_.size() >> 8)).first;
                blocks_.insert(blocks_.end(), block.begin(), block.end());
            }
            index_[b] = it->second;
        }
        for (uint32_t c = 0; c < 0x80; ++c) ascii_[c] = blocks_[(static_cast<size_t>(index_[0]) << 8) | c];
    }
    uint8_t operator[](char32_t c) const {
        if (c < 0x80) return ascii_[c];  // most text: one load
        if (c >= kSize || index_.empty()) return 0;
        return blocks_[(static_cast<size_t>(index_[c >> 8]) << 8) | (c & 0xFF)];
    }

  private:
    std::vector<uint16_t> index_;
    std::vector<uint8_t> blocks_;
    std::array<uint8_t, 0x80> ascii_{};  // the classes of ASCII, copied out of the first block
};

}  // namespace llmlab
