// core.py's description of a pipeline's stages (plain Python values: dicts, lists, bytes; see core.py) read
// into the C++ stages. The tokenizer core (module.cpp) and word counting (training.cpp) read them alike.
#pragma once

#include <nanobind/nanobind.h>

#include <array>
#include <memory>
#include <vector>

#include "added_tokens.h"
#include "chartable.h"
#include "decoder.h"
#include "encoding.h"
#include "model.h"
#include "normalizer.h"
#include "pretokenizer.h"
#include "py_text.h"

namespace llmlab {

// (run starts, the class of each run as bytes)
CharTable read_char_table(nb::handle runs);

// A normalizer's forms as core_tables.pack_forms gives them: (code points, the code points of their forms one
// after another, where each form ends), arrays of uint32 as bytes.
Forms read_forms(nb::handle packed);

// The stages; null for None.
std::unique_ptr<Normalizer> read_normalizer(nb::handle spec);
std::unique_ptr<PreTokenizer> read_pre_tokenizer(nb::handle spec);
std::unique_ptr<Model> read_model(nb::dict d);

// The 256 characters that stand for the bytes (byte-level BPE).
std::array<char32_t, 256> read_bytes(nb::handle chars);

std::vector<AddedToken> read_added(nb::handle items);

// Into `pp` / `decoder` (left as they are for None).
void read_post_processor(nb::handle post, PostProcessor& pp);
void read_decoder(nb::handle dec, Decoder& decoder);

}  // namespace llmlab
