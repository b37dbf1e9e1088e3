// A class (0-255) for every code point, as a two-stage table: 256-entry blocks, identical blocks shared.
//
// The core knows no Unicode property itself: each table is computed in Python from the very stages the pure
// path runs (core_tables.py) and handed over as runs (start code point, class), so both paths classify alike.
#pragma once

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
        std::vector<uint8_t> flat(kSize, 0);
        for (size_t i = 0; i < starts.size(); ++i) {
            uint32_t end = i + 1 < starts.size() ? starts[i + 1] : kSize;
            for (uint32_t c = starts[i]; c < end && c < kSize; ++c) flat[c] = values[i];
        }
        std::map<std::vector<uint8_t>, uint16_t> seen;
        index_.assign(kSize >> 8, 0);
        blocks_.clear();
        for (uint32_t b = 0; b < (kSize >> 8); ++b) {
            std::vector<uint8_t> block(flat.begin() + (b << 8), flat.begin() + ((b + 1) << 8));
            auto it = seen.find(block);
            if (it == seen.end()) {
                it = seen.emplace(block, static_cast<uint16_t>(blocks_.size() >> 8)).first;
                blocks_.insert(blocks_.end(), block.begin(), block.end());
            }
            index_[b] = it->second;
        }
    }
    uint8_t operator[](char32_t c) const {
        if (c >= kSize || index_.empty()) return 0;
        return blocks_[(static_cast<size_t>(index_[c >> 8]) << 8) | (c & 0xFF)];
    }

  private:
    std::vector<uint16_t> index_;
    std::vector<uint8_t> blocks_;
};

}  // namespace llmlab
