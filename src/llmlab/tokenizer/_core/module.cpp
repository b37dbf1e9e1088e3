// Python bindings (nanobind): the compiled tokenizer core.
//
// `Core(config)` takes the plain-Python description that core.py builds from a Tokenizer's stages (vocab,
// merges, Unicode tables computed by the Python stages themselves, ...; read by py_stages.h) and keeps none
// of it (a pickled Tokenizer builds its core again from its stages). It returns lazy Encodings
// (py_encoding.h); its batches run on threads (batch.h, with py_batch.h's inputs and results).
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>

#include <memory>
#include <mutex>
#include <shared_mutex>
#if defined(__GLIBC__)
#include <malloc.h>  // malloc_trim
#endif

#include "batch.h"
#include "decoder.h"
#include "pipeline.h"
#include "py_batch.h"
#include "py_encoding.h"
#include "py_stages.h"
#include "py_text.h"

using namespace llmlab;

namespace llmlab {
void bind_training(nb::module_& m);  // training.cpp
}

struct Core {
    Pipeline pipeline;
    Decoder decoder;
    std::shared_ptr<TokenTable> table = std::make_shared<TokenTable>();
    std::vector<uint8_t> special;  // by id (the first entries of the table): a special added token
    Workspace workspace;           // for single calls, which hold the GIL
    Input input;
    Enc output;  // reused too (an Encoding packs a copy): a single encode allocates once, not six times
    static constexpr size_t kKeptTokens = size_t{1} << 16;

    // What dropped Encodings left waits for the next batch (see drop_later), which may be another
    // tokenizer's: it is freed here, with this core (the last references to its table may be among it), not
    // in that batch, where freeing a table (30k strs and ints) was ~0.5 ms of serial work: the first batch
    // of a fresh WordPiece English tokenizer after another one on 2 threads, 1.6 -> 1.0 ms.
    ~Core() { free_dropped(); }

    explicit Core(nb::dict d) {
        nb::list entries = nb::borrow<nb::list>(d["token_table"]);
        table->reserve(entries);
        for (nb::handle s : entries) table->add(s);
        Pipeline& p = pipeline;
        p.normalizer = read_normalizer(d["normalizer"]);
        p.pre_tokenizer = read_pre_tokenizer(d["pre_tokenizer"]);
        p.model = read_model(nb::borrow<nb::dict>(d["model"]));
        if (!d["byte_chars"].is_none()) {
            p.byte_level = true;
            p.byte_chars = read_bytes(d["byte_chars"]);
        }
        p.cache_single_characters();
        p.unk_as_text = nb::cast<int32_t>(d["unk_as_text"]);
        if (!d["word_chars"].is_none()) p.word_chars = read_char_table(d["word_chars"]);
        if (!d["spaces"].is_none()) p.spaces = read_char_table(d["spaces"]);
        p.raw_added = AddedMatcher(read_added(d["raw_added"]), &p.word_chars, &p.spaces);
        p.normalized_added = AddedMatcher(read_added(d["normalized_added"]), &p.word_chars, &p.spaces);
        read_post_processor(d["post"], p.post);
        for (char32_t c : to_str(d["space_chars"])) p.spaces_list.push_back(c);
        read_decoder(d["decoder"], decoder);
        special.assign(nb::cast<size_t>(d["n_ids"]), 0);
        for (nb::handle i : nb::borrow<nb::list>(d["special_ids"])) {
            const int64_t id = nb::cast<int64_t>(i);
            if (id >= 0 && id < static_cast<int64_t>(special.size())) special[id] = 1;
        }
        refresh_ends();
        share_ints(nb::borrow<nb::dict>(d["model"]));  // last: once the build's temporaries are freed (peak memory)
#if defined(__GLIBC__)
        // Building left freed memory inside the heap (the description's tables, the keys of the tries):
        // glibc keeps it resident until asked to give it back (the peak memory of loading and encoding).
        malloc_trim(0);
#endif
    }

    // The vocabulary's own int objects become the ids' ints (TokenTable::int_of): the id lists of encodings
    // share them, where one more object per id seen was made (issue 10: peak memory of encoding).
    void share_ints(nb::dict model) {
        if (!model.contains("vocab")) return;
        std::vector<PyObject*>& ints = table->ints;
        ints.assign(table->size(), nullptr);
        for (auto [token, id] : nb::borrow<nb::dict>(model["vocab"])) {
            if (!PyLong_CheckExact(id.ptr())) continue;
            const long k = PyLong_AsLong(id.ptr());  // describe() has checked: 0 <= id < the table's size
            if (k >= 0 && static_cast<size_t>(k) < ints.size() && !ints[k]) ints[k] = Py_NewRef(id.ptr());
        }
    }

    void refresh_ends() {  // leading / trailing spaces of every token-table entry
        pipeline.space_ends.resize(table->size());
        Str text;
        for (size_t i = 0; i < table->size(); ++i) {
            table->text(i, text);
            pipeline.space_ends[i] = space_ends(text, pipeline.spaces_list);
        }
    }

    void set_truncation(nb::object t) {  // None or (max_length, stride, strategy, left)
        pipeline.truncate = !t.is_none();
        if (pipeline.truncate)
            pipeline.truncation = {nb::cast<int64_t>(t[0]), nb::cast<int64_t>(t[1]), nb::cast<int>(t[2]),
                                   nb::cast<bool>(t[3])};
    }

    void set_padding(nb::object p) {  // None or (left, pad_id, pad_type_id, pad_token, length, multiple)
        pipeline.pad = !p.is_none();
        if (!pipeline.pad) return;
        Padding& pad = pipeline.padding;
        pad.left = nb::cast<bool>(p[0]);
        pad.pad_id = nb::cast<int32_t>(p[1]);
        pad.pad_type_id = nb::cast<int32_t>(p[2]);
        pad.pad_token = table->add(p[3]);
        Str pad_text;
        table->text(pad.pad_token, pad_text);
        pipeline.space_ends.push_back(space_ends(pad_text, pipeline.spaces_list));
        pad.length = p[4].is_none() ? -1 : nb::cast<int64_t>(p[4]);
        pad.multiple = p[5].is_none() ? 0 : nb::cast<int64_t>(p[5]);
    }


    nb::object encode(nb::handle text, nb::handle pair, bool add_special_tokens) {
        Input& in = input;  // reused: single calls hold the GIL
        in.has_pair = false;
        if (!read_text(text.ptr(), in.text)) return nb::none();
        if (!pair.is_none()) {
            if (!read_text(pair.ptr(), in.pair)) return nb::none();
            in.has_pair = true;
        }
        Enc& out = output;
        bool ok;
        std::unique_lock<std::shared_mutex> writing(pipeline.cache.mutex, std::try_to_lock);
        if (writing.owns_lock()) {
            workspace.holds_cache = true;
            ok = pipeline.encode(in, add_special_tokens, true, out, workspace);
        } else {  // a batch on another thread is using the cache: insert beside its workers
            std::shared_lock<std::shared_mutex> reading(pipeline.cache.mutex);
            workspace.holds_cache = false;
            ok = pipeline.encode(in, add_special_tokens, true, out, workspace);
        }
        if (!ok) return nb::none();
        nb::object encoding = nb::cast(Encoding(out, table), nb::rv_policy::move);
        if (out.ids.capacity() > kKeptTokens) out = Enc{};  // (a long text's room is not kept)
        return encoding;
    }

    // -> (encodings, indices of the inputs left to Python, whose entries are None)
    nb::tuple encode_batch(nb::list inputs, bool add_special_tokens, int threads) {
        PyBatch batch(inputs, table, pipeline.pad);
        run(batch, add_special_tokens, threads);
        return batch.result();
    }

    // -> (ids, offsets) of every input, or None (see IdsBatch)
    nb::object encode_batch_ids(nb::list inputs, bool add_special_tokens, int threads) {
        if (pipeline.pad) return nb::none();  // (batch padding needs every encoding: Python pads encode_batch's)
        IdsBatch batch(inputs);
        run(batch, add_special_tokens, threads);
        return batch.result();
    }

    void run(PyInputs& batch, bool add_special_tokens, int threads) {
        nb::gil_scoped_release released;
        llmlab::encode_batch(pipeline, batch, batch.size(), batch.chars(), add_special_tokens, threads, batch.out,
                             batch.ok);
    }

    nb::object decode(nb::handle ids, bool skip_special_tokens) {
        if (decoder.kind == Decoder::kPython) return nb::none();
        Str chars, token;  // the tokens' characters, one after another
        std::vector<std::pair<size_t, size_t>> spans;
        for (nb::handle h : nb::borrow<nb::sequence>(ids)) {
            const long long id = PyLong_AsLongLong(h.ptr());
            if (id == -1 && PyErr_Occurred()) {
                PyErr_Clear();
                return nb::none();  // not an int: Python decides what that means
            }
            if (id < 0 || id >= static_cast<long long>(special.size()) || !table->strs[id]) continue;
            if (skip_special_tokens && special[id]) continue;
            table->text(id, token);
            spans.emplace_back(chars.size(), token.size());
            chars += token;
        }
        std::vector<View> tokens;
        for (const auto& [start, size] : spans) tokens.push_back(View(chars).substr(start, size));
        const std::string text = decoder.decode(tokens);
        const char* errors = decoder.kind == Decoder::kByteLevel ? "replace" : "surrogatepass";
        PyObject* s = PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()), errors);
        if (!s) throw nb::python_error();
        return nb::steal(s);
    }
};

NB_MODULE(_corelib, m) {
    m.doc() = "The compiled tokenizer core (sources: src/llmlab/tokenizer/_core/; Python side: core.py).";
    bind_training(m);

    bind_encoding(m);

    nb::class_<Core>(m, "Core")
        .def(nb::init<nb::dict>())
        .def("encode", &Core::encode, nb::arg("text"), nb::arg("pair").none(), nb::arg("add_special_tokens"))
        .def("encode_batch", &Core::encode_batch)
        .def("encode_batch_ids", &Core::encode_batch_ids)
        .def("decode", &Core::decode)
        .def("set_truncation", &Core::set_truncation, nb::arg("truncation").none())
        .def("set_padding", &Core::set_padding, nb::arg("padding").none());
}
