// core.py's description of the stages, read into them; see py_stages.h.
#include "py_stages.h"

#include <nanobind/stl/string.h>

#include <cstring>
#include <string>

#include "bpe.h"
#include "py_text.h"
#include "unigram.h"
#include "wordpiece.h"

namespace llmlab {

namespace {

// Calls f(token, id) for each entry of {token: id} or [(token, id)].
template <class F>
void for_each_entry(nb::handle items, F&& f) {
    if (nb::isinstance<nb::dict>(items)) {
        for (auto [token, id] : nb::borrow<nb::dict>(items)) f(token, id);
        return;
    }
    for (nb::handle item : nb::borrow<nb::list>(items)) f(nb::object(item[0]), nb::object(item[1]));
}

std::vector<std::pair<Str, int32_t>> read_vocab(nb::handle items) {  // {token: id} or [(token, id)]
    std::vector<std::pair<Str, int32_t>> out;
    out.reserve(nb::len(items));  // no doubling on the way (the peak memory of loading)
    for_each_entry(items, [&](nb::handle token, nb::handle id) {
        out.emplace_back(to_str(token), nb::cast<int32_t>(id));
    });
    return out;
}

// {token: id} or [(token, id)] straight into the keys of a trie: no string object per token on the way, and
// the arena sized once (the peak memory of loading).
TrieKeys read_keys(nb::handle items) {
    size_t chars = 0;
    for_each_entry(items, [&](nb::handle token, nb::handle) {
        if (PyUnicode_Check(token.ptr())) chars += PyUnicode_GET_LENGTH(token.ptr());
    });
    TrieKeys keys;
    keys.reserve(nb::len(items), chars);
    Str token;  // one buffer for every token
    for_each_entry(items, [&](nb::handle t, nb::handle id) {
        if (!read_text(t.ptr(), token)) throw nb::type_error("expected a str");
        keys.add(token, nb::cast<int32_t>(id));
    });
    return keys;
}

std::vector<TemplatePiece> read_template(nb::handle pieces) {
    std::vector<TemplatePiece> out;
    for (nb::handle p : nb::borrow<nb::list>(pieces)) {
        TemplatePiece piece{nb::cast<bool>(p[0]), nb::cast<int>(p[1]), nb::cast<int32_t>(p[2]), {}, {}};
        for (nb::handle i : nb::borrow<nb::list>(p[3])) piece.ids.push_back(nb::cast<int32_t>(i));
        for (nb::handle i : nb::borrow<nb::list>(p[4])) piece.tokens.push_back(nb::cast<int32_t>(i));
        out.push_back(std::move(piece));
    }
    return out;
}

}  // namespace

CharTable read_char_table(nb::handle runs) {
    std::vector<uint32_t> starts;
    for (nb::handle s : nb::borrow<nb::list>(runs[0])) starts.push_back(nb::cast<uint32_t>(s));
    nb::bytes values = nb::borrow<nb::bytes>(runs[1]);
    const auto* p = static_cast<const uint8_t*>(values.data());
    CharTable table;
    table.build(starts, std::vector<uint8_t>(p, p + values.size()));
    return table;
}

Forms read_forms(nb::handle packed) {
    auto uint32s = [](nb::handle b) {
        nb::bytes bytes = nb::borrow<nb::bytes>(b);
        std::vector<uint32_t> out(bytes.size() / sizeof(uint32_t));
        std::memcpy(out.data(), bytes.data(), out.size() * sizeof(uint32_t));
        return out;
    };
    const std::vector<uint32_t> codes = uint32s(packed[0]), chars = uint32s(packed[1]), ends = uint32s(packed[2]);
    if (ends.size() != codes.size() || (!ends.empty() && ends.back() != chars.size()))
        throw nb::value_error("malformed normalizer forms");
    Forms forms;
    Str form;
    for (size_t i = 0, start = 0; i < codes.size(); start = ends[i++]) {
        if (ends[i] < start) throw nb::value_error("malformed normalizer forms");
        form.assign(chars.begin() + start, chars.begin() + ends[i]);
        forms.add(codes[i], form);
    }
    return forms;
}

std::unique_ptr<Normalizer> read_normalizer(nb::handle spec) {
    if (spec.is_none()) return nullptr;
    return std::make_unique<Normalizer>(read_char_table(spec["classes"]), read_forms(spec["forms"]));
}

std::unique_ptr<PreTokenizer> read_pre_tokenizer(nb::handle spec) {
    if (spec.is_none()) return nullptr;
    auto pre = std::make_unique<PreTokenizer>();
    const std::string kind = nb::cast<std::string>(spec["kind"]);
    pre->kind = kind == "bert" ? PreTokenizer::kBert
                : kind == "byte_level" ? PreTokenizer::kByteLevel : PreTokenizer::kMetaspace;
    if (!spec["classes"].is_none()) pre->classes = read_char_table(spec["classes"]);
    pre->add_prefix_space = nb::cast<bool>(spec["add_prefix_space"]);
    pre->use_regex = nb::cast<bool>(spec["use_regex"]);
    pre->replacement = to_str(spec["replacement"]).at(0);
    pre->prepend = static_cast<PreTokenizer::Prepend>(nb::cast<int>(spec["prepend"]));
    pre->split_words = nb::cast<bool>(spec["split"]);
    return pre;
}

std::unique_ptr<Model> read_model(nb::dict d) {
    const std::string kind = nb::cast<std::string>(d["kind"]);
    if (kind == "bpe") {
        BpeConfig c;
        c.vocab = read_vocab(d["vocab"]);
        nb::bytes merges = nb::borrow<nb::bytes>(d["merges"]);  // int32 (left, right, merged) by rank
        c.merges.resize(merges.size() / sizeof(c.merges[0]));
        std::memcpy(c.merges.data(), merges.data(), c.merges.size() * sizeof(c.merges[0]));
        c.unk_id = nb::cast<int32_t>(d["unk_id"]);
        c.has_unk_token = nb::cast<bool>(d["has_unk"]);
        c.prefix = to_str(d["prefix"]);
        c.suffix = to_str(d["suffix"]);
        c.ignore_merges = nb::cast<bool>(d["ignore_merges"]);
        c.fuse_unk = nb::cast<bool>(d["fuse_unk"]);
        c.byte_fallback = nb::cast<bool>(d["byte_fallback"]);
        for (nb::handle piece : nb::borrow<nb::list>(d["char_pieces"])) {
            std::vector<int32_t> ids, sizes;
            for (nb::handle i : nb::borrow<nb::list>(piece[1])) ids.push_back(nb::cast<int32_t>(i));
            for (nb::handle i : nb::borrow<nb::list>(piece[2])) sizes.push_back(nb::cast<int32_t>(i));
            c.char_pieces.emplace_back(nb::cast<uint32_t>(piece[0]), std::move(ids), std::move(sizes));
        }
        return std::make_unique<Bpe>(c);
    }
    if (kind == "wordpiece") {
        WordPieceConfig c;
        c.unk_id = nb::cast<int32_t>(d["unk_id"]);
        c.prefix = to_str(d["prefix"]);
        c.max_chars = nb::cast<int64_t>(d["max_chars"]);
        return std::make_unique<WordPiece>(c, read_keys(d["vocab"]));
    }
    UnigramConfig c;
    c.matched = read_keys(d["matched"]);
    for (nb::handle s : nb::borrow<nb::list>(d["scores"])) c.scores.push_back(nb::cast<double>(s));
    c.unk_id = nb::cast<int32_t>(d["unk_id"]);
    c.unk_score = nb::cast<double>(d["unk_score"]);
    c.byte_fallback = nb::cast<bool>(d["byte_fallback"]);
    nb::list byte_ids = nb::borrow<nb::list>(d["byte_ids"]);
    for (size_t b = 0; b < 256 && b < byte_ids.size(); ++b) c.byte_ids[b] = nb::cast<int32_t>(byte_ids[b]);
    return std::make_unique<Unigram>(std::move(c));
}

std::array<char32_t, 256> read_bytes(nb::handle chars) {
    std::array<char32_t, 256> out{};
    nb::list list = nb::borrow<nb::list>(chars);
    for (size_t b = 0; b < 256; ++b) out[b] = nb::cast<uint32_t>(list[b]);
    return out;
}

std::vector<AddedToken> read_added(nb::handle items) {
    std::vector<AddedToken> out;
    for (nb::handle t : nb::borrow<nb::list>(items))
        out.push_back({to_str(t[0]), nb::cast<int32_t>(t[1]), nb::cast<int32_t>(t[2]), nb::cast<bool>(t[3]),
                       nb::cast<bool>(t[4]), nb::cast<bool>(t[5])});
    return out;
}

void read_post_processor(nb::handle post, PostProcessor& pp) {
    if (post.is_none()) return;
    nb::dict d = nb::borrow<nb::dict>(post);
    if (nb::cast<std::string>(d["kind"]) == "template") {
        pp.kind = PostProcessor::kTemplate;
        pp.single = read_template(d["single"]);
        pp.pair = read_template(d["pair"]);
    } else {
        pp.kind = PostProcessor::kByteLevel;
        pp.trim_offsets = nb::cast<bool>(d["trim_offsets"]);
        pp.add_prefix_space = nb::cast<bool>(d["add_prefix_space"]);
    }
}

void read_decoder(nb::handle dec, Decoder& decoder) {
    if (dec.is_none()) return;
    nb::dict d = nb::borrow<nb::dict>(dec);
    const std::string kind = nb::cast<std::string>(d["kind"]);
    if (kind == "wordpiece") {
        decoder.kind = Decoder::kWordPiece;
        decoder.prefix = to_str(d["prefix"]);
        decoder.cleanup = nb::cast<bool>(d["cleanup"]);
    } else if (kind == "byte_level") {
        decoder.kind = Decoder::kByteLevel;
        decoder.byte_chars = read_bytes(d["byte_chars"]);
    } else if (kind == "metaspace") {
        decoder.kind = Decoder::kMetaspace;
        decoder.replacement = to_str(d["replacement"])[0];
        decoder.prepend_never = nb::cast<bool>(d["prepend_never"]);
    } else {
        decoder.kind = Decoder::kPython;
    }
}

}  // namespace llmlab
