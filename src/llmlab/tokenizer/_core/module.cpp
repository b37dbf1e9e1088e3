// Python bindings (nanobind): the compiled tokenizer core and the lazy Encoding it returns.
//
// `Core(config)` takes the plain-Python description that core.py builds from a Tokenizer's stages (vocab,
// merges, Unicode tables computed by the Python stages themselves, ...) and keeps none of it (a pickled
// Tokenizer builds its core again from its stages).
// Encodings hold C++ vectors and turn each field into a Python list only when it is read (then that list is
// the field); a batch builds its ids lists at once (PyBatch).
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#if defined(__GLIBC__)
#include <malloc.h>  // malloc_trim
#endif

#include "batch.h"
#include "bpe.h"
#include "decoder.h"
#include "helpers.h"
#include "pipeline.h"
#include "py_arrays.h"
#include "unigram.h"
#include "wordpiece.h"

namespace nb = nanobind;
using namespace llmlab;

namespace llmlab {
void bind_training(nb::module_& m);  // training.cpp
}

namespace {

// The code points of a str; false for one holding a lone surrogate. Needs no GIL: a str is immutable, and
// this only reads it (the caller keeps it alive).
bool read_chars(PyObject* o, Str& out) {
    const Py_ssize_t n = PyUnicode_GET_LENGTH(o);
    const int kind = PyUnicode_KIND(o);
    const void* data = PyUnicode_DATA(o);
    out.resize(n);
    char32_t* to = out.data();  // through a plain pointer the copies vectorize
    if (kind == PyUnicode_1BYTE_KIND) {
        const auto* p = static_cast<const Py_UCS1*>(data);
        for (Py_ssize_t i = 0; i < n; ++i) to[i] = p[i];
        return true;
    }
    char32_t surrogates = 0;  // a lone surrogate (no UTF-8 form): the text is left to Python
    if (kind == PyUnicode_2BYTE_KIND) {
        const auto* p = static_cast<const Py_UCS2*>(data);
        for (Py_ssize_t i = 0; i < n; ++i) surrogates |= (to[i] = p[i]) - 0xD800 < 0x800;
    } else {
        const auto* p = static_cast<const Py_UCS4*>(data);
        for (Py_ssize_t i = 0; i < n; ++i) surrogates |= (to[i] = p[i]) - 0xD800 < 0x800;
    }
    return !surrogates;
}

// The code points of a str; false for something else, or a str holding a lone surrogate.
bool read_text(PyObject* o, Str& out) { return PyUnicode_Check(o) && read_chars(o, out); }

Str to_str(nb::handle o) {
    Str s;
    if (!read_text(o.ptr(), s)) throw nb::type_error("expected a str");
    return s;
}

PyObject* new_str(const Str& s) {
    return PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, s.data(), static_cast<Py_ssize_t>(s.size()));
}

// The token strings: id -> str, then the extra entries core.py appends (template and added tokens, ...).
struct TokenTable {
    std::vector<PyObject*> strs;  // owned references (null: no token); read when a text is needed (GIL held)
    std::vector<PyObject*> ints;  // owned: the int of each id seen so far (null: not yet made)
    ~TokenTable() {
        for (PyObject* s : strs) Py_XDECREF(s);
        for (PyObject* i : ints) Py_XDECREF(i);
    }
    // A new reference to the int `id`: an id list shares one object per id instead of allocating its own.
    PyObject* int_of(int32_t id) {
        if (static_cast<uint32_t>(id) < ints.size() && ints[id]) return Py_NewRef(ints[id]);
        if (id < 0 || static_cast<size_t>(id) >= strs.size()) return PyLong_FromLong(id);
        if (ints.size() < strs.size()) ints.resize(strs.size(), nullptr);
        ints[id] = PyLong_FromLong(id);
        Py_XINCREF(ints[id]);
        return ints[id];
    }
    size_t size() const { return strs.size(); }
    void reserve(nb::list entries) { strs.reserve(entries.size()); }  // no doubling on the way
    // The text of entry i (empty: no token) into `out`, which is reused: no copy of every token is kept.
    void text(size_t i, Str& out) const {
        out.clear();
        if (strs[i]) read_text(strs[i], out);
    }
    int32_t add(nb::handle s) {  // s: a str, or None (no token)
        if (!s.is_none()) to_str(s);  // a str the core cannot hold raises before anything is added
        strs.push_back(s.is_none() ? nullptr : nb::borrow(s).release().ptr());
        return static_cast<int32_t>(strs.size() - 1);
    }
};

void build_table(CharTable& table, nb::handle spec) {  // spec: (starts, classes as bytes)
    std::vector<uint32_t> starts;
    for (nb::handle s : nb::borrow<nb::list>(spec[0])) starts.push_back(nb::cast<uint32_t>(s));
    nb::bytes values = nb::borrow<nb::bytes>(spec[1]);
    const auto* p = static_cast<const uint8_t*>(values.data());
    table.build(starts, std::vector<uint8_t>(p, p + values.size()));
}

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

std::array<char32_t, 256> read_bytes(nb::handle chars) {
    std::array<char32_t, 256> out{};
    nb::list list = nb::borrow<nb::list>(chars);
    for (size_t b = 0; b < 256; ++b) out[b] = nb::cast<uint32_t>(list[b]);
    return out;
}

std::unique_ptr<Model> build_model(nb::dict d) {
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

std::vector<AddedToken> read_added(nb::handle items) {
    std::vector<AddedToken> out;
    for (nb::handle t : nb::borrow<nb::list>(items))
        out.push_back({to_str(t[0]), nb::cast<int32_t>(t[1]), nb::cast<int32_t>(t[2]), nb::cast<bool>(t[3]),
                       nb::cast<bool>(t[4]), nb::cast<bool>(t[5])});
    return out;
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


int count_ends(View s, const std::vector<char32_t>& spaces, bool leading) {
    auto is_space = [&](char32_t c) { return std::find(spaces.begin(), spaces.end(), c) != spaces.end(); };
    size_t k = 0;
    while (k < s.size() && is_space(leading ? s[k] : s[s.size() - 1 - k])) ++k;
    return static_cast<int>(k);
}

}  // namespace

namespace llmlab {
// A normalizer's forms as core_tables.pack_forms gives them: (code points, the code points of their forms one
// after another, where each form ends), arrays of uint32 as bytes. Also read by training.cpp.
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
}  // namespace llmlab

// ------------------------------------------------------------------------------------------- Encoding

struct Encoding {
    Enc enc;
    std::shared_ptr<TokenTable> table;
    nb::object fields[7];  // the Python lists, once read (or set)

    enum Field { kIds, kTokens, kOffsets, kTypeIds, kAttention, kSpecial, kOverflowing };

    nb::object get(int f) {
        if (!fields[f].is_valid()) fields[f] = build(f);
        return fields[f];
    }
    void set(int f, nb::object value) { fields[f] = std::move(value); }

    nb::object build(int f) {
        const size_t n = enc.size();
        PyObject* list = PyList_New(f == kOverflowing ? enc.overflowing.size() : n);
        if (!list) throw nb::python_error();
        if (f == kIds) {  // the field read most: a loop of its own
            for (size_t i = 0; i < n; ++i) {
                PyObject* item = table->int_of(enc.ids[i]);
                if (!item) {
                    Py_DECREF(list);
                    throw nb::python_error();
                }
                PyList_SET_ITEM(list, i, item);
            }
            return nb::steal(list);
        }
        for (size_t i = 0; i < (f == kOverflowing ? enc.overflowing.size() : n); ++i) {
            PyObject* item = nullptr;
            switch (f) {
                case kIds:
                    item = table->int_of(enc.ids[i]);
                    break;
                case kTokens: {
                    const int32_t t = enc.tokens[i];
                    if (t >= 0) {
                        item = table->strs[t];
                        Py_XINCREF(item);
                        if (!item) item = Py_NewRef(Py_None);
                    } else {
                        item = new_str(enc.customs[~t]);
                    }
                    break;
                }
                case kOffsets:
                    item = PyTuple_New(2);
                    if (item) {
                        PyTuple_SET_ITEM(item, 0, PyLong_FromLong(enc.offsets[i].first));
                        PyTuple_SET_ITEM(item, 1, PyLong_FromLong(enc.offsets[i].second));
                    }
                    break;
                case kTypeIds:
                    item = PyLong_FromLong(enc.type_ids[i]);
                    break;
                case kAttention:
                    item = PyLong_FromLong(enc.attention[i]);
                    break;
                case kSpecial:
                    item = PyLong_FromLong(enc.special[i]);
                    break;
                default: {
                    Encoding window{std::move(enc.overflowing[i]), table, {}};
                    item = nb::cast(std::move(window), nb::rv_policy::move).release().ptr();
                }
            }
            if (!item) {
                Py_DECREF(list);
                throw nb::python_error();
            }
            PyList_SET_ITEM(list, i, item);
        }
        return nb::steal(list);
    }
    size_t length() { return fields[kIds].is_valid() ? nb::len(fields[kIds]) : enc.size(); }
};

// ------------------------------------------------------------------------------------------- Batch

// The inputs of a batch (batch.h): a list of strs or (text, pair) tuples, kept alive here; workers read the
// strs without the GIL.
class PyInputs : public BatchIO {
  public:
    explicit PyInputs(nb::list inputs) : n_(inputs.size()), texts_(n_), pairs_(n_) {
        for (size_t i = 0; i < n_; ++i) gather(i, PyList_GET_ITEM(inputs.ptr(), i));
    }
    size_t size() const { return n_; }
    size_t chars() const { return chars_; }

    bool read(size_t i, Input& in) override {
        in.has_pair = pairs_[i].is_valid();
        return texts_[i].is_valid() && read_chars(texts_[i].ptr(), in.text) &&
               (!in.has_pair || read_chars(pairs_[i].ptr(), in.pair));
    }

    std::vector<Enc> out;
    std::vector<uint8_t> ok;

  protected:
    size_t n_;

  private:
    // Input i: a str or a (text, pair) of strs; anything else (None) is left to Python.
    void gather(size_t i, PyObject* item) {
        if (PyUnicode_Check(item)) {
            texts_[i] = nb::borrow(item);
        } else if ((PyTuple_Check(item) || PyList_Check(item)) && PySequence_Size(item) == 2) {
            nb::object a = nb::steal(PySequence_GetItem(item, 0)), b = nb::steal(PySequence_GetItem(item, 1));
            if (!PyUnicode_Check(a.ptr()) || !PyUnicode_Check(b.ptr())) return;
            texts_[i] = a;
            pairs_[i] = b;
        } else {
            return;
        }
        chars_ += PyUnicode_GET_LENGTH(texts_[i].ptr());
        if (pairs_[i].is_valid()) chars_ += PyUnicode_GET_LENGTH(pairs_[i].ptr());
    }

    size_t chars_ = 0;
    std::vector<nb::object> texts_, pairs_;  // (an empty pair: a single text)
};

// A batch whose results are Encodings: the caller turns each finished encoding into one, its ids list built
// at once (the field read most, and making it here overlaps the other workers' encoding; read later, it would
// be serial work after the batch).
class PyBatch final : public PyInputs {
  public:
    PyBatch(nb::list inputs, std::shared_ptr<TokenTable> table)
        : PyInputs(inputs), table_(std::move(table)),
          encodings_(nb::steal(PyList_New(static_cast<Py_ssize_t>(n_)))) {
        if (!encodings_.is_valid()) throw nb::python_error();
    }

    void take(const std::vector<Span>& spans) override {
        nb::gil_scoped_acquire gil;
        if (failed_) return;
        try {
            for (const Span& s : spans)
                for (size_t i = s.begin; i < s.end; ++i)
                    PyList_SET_ITEM(encodings_.ptr(), i, ok[i] ? wrap(std::move(out[i])) : Py_NewRef(Py_None));
        } catch (nb::python_error& e) {  // (the batch goes on without the GIL: raised by result())
            e.restore();
            failed_ = true;
        } catch (...) {
            PyErr_NoMemory();
            failed_ = true;
        }
    }

    // (Encodings, indices of the inputs left to Python, whose entries are None).
    nb::tuple result() {
        if (failed_) throw nb::python_error();
        nb::list missing;
        for (size_t i = 0; i < n_; ++i)
            if (!ok[i]) missing.append(i);
        return nb::make_tuple(encodings_, missing);
    }

  private:
    // A new Encoding made in place (nb::cast would look the type up and move the fields once more).
    PyObject* wrap(Enc&& e) {
        nb::object inst = nb::inst_alloc(type_);
        if (!inst.is_valid()) throw nb::python_error();
        Encoding* enc = new (nb::inst_ptr<Encoding>(inst)) Encoding{std::move(e), table_, {}};
        nb::inst_mark_ready(inst);  // (from here on the instance destroys what it holds)
        enc->fields[Encoding::kIds] = enc->build(Encoding::kIds);
        return inst.release().ptr();
    }

    std::shared_ptr<TokenTable> table_;
    nb::handle type_ = nb::type<Encoding>();
    nb::object encodings_;  // a list, filled by take() (until then its items are null: it is not shared)
    bool failed_ = false;   // take() failed: the Python error is set
};

// A batch whose result is every input's ids one after another, with where each input's begin: no Python
// object per text, so nothing of the batch is serial but the final copy. Each worker appends the ids of the
// inputs it encoded to a buffer of its own, right after encoding each (its encodings' memory is reused).
class IdsBatch final : public PyInputs {
  public:
    explicit IdsBatch(nb::list inputs) : PyInputs(inputs), where_(new Where[n_]) {}
    bool keeps_encodings() const override { return false; }
    void start(int threads) override { ids_.resize(static_cast<size_t>(threads)); }
    void finished(size_t i, int worker, const Enc& e) override {
        std::vector<int32_t>& ids = ids_[static_cast<size_t>(worker)].ids;
        where_[i] = {worker, ids.size(), e.ids.size()};
        ids.insert(ids.end(), e.ids.begin(), e.ids.end());
    }
    void take(const std::vector<Span>&) override {}

    // (ids as an int32 memoryview, offsets (n + 1) as an int64 memoryview), or None if an input was left to
    // Python (its caller then encodes the batch the other way). A large batch's ids are gathered on the
    // helper threads too, each worker's buffer by one thread (nearby: on the core that wrote it), a run of
    // consecutive inputs at a time (one copy per run instead of per input: 8-10 -> 3-5 us a batch of 1,000
    // English lines).
    nb::object result() {
        std::vector<int64_t> offsets(n_ + 1, 0);
        for (size_t i = 0; i < n_; ++i) {
            if (!ok[i]) return nb::none();
            offsets[i + 1] = offsets[i] + static_cast<int64_t>(where_[i].size);
        }
        const size_t total = static_cast<size_t>(offsets[n_]);
        std::unique_ptr<int32_t[]> ids(new int32_t[std::max<size_t>(total, 1)]);  // (every value written below)
        std::atomic<size_t> next{0};
        auto gather = [&](int) {  // the buffers of the workers not yet taken
            for (size_t w; (w = next.fetch_add(1)) < ids_.size();) {
                const int32_t* from = ids_[w].ids.data();
                for (size_t i = 0, j; i < n_; i = j) {
                    for (j = i + 1; j < n_ && where_[j].worker == where_[i].worker;) ++j;
                    if (static_cast<size_t>(where_[i].worker) != w) continue;
                    // inputs [i, j), one run of this worker's: one after another in its buffer (it took them in
                    // that order) and in the result
                    std::copy(from + where_[i].start, from + where_[j - 1].start + where_[j - 1].size, &ids[offsets[i]]);
                }
            }
        };
        {
            nb::gil_scoped_release released;
            if (ids_.size() > 1 && total >= kGatherOnThreads) {
                Helpers helpers(static_cast<int>(ids_.size()) - 1, gather);
                gather(0);
            } else {
                gather(0);
            }
        }
        return nb::make_tuple(owned_array<int32_t, nb::memview>(std::move(ids), total),
                              owned_array<int64_t, nb::memview>(std::move(offsets)));
    }

  private:
    struct Where {  // input i's ids: ids_[worker][start, start + size), written by that worker (and never
                    // zeroed first: the caller would write the lines the workers write next)
        int worker;
        size_t start, size;
    };
    struct alignas(64) Ids {  // a cache line of its own: the workers append to theirs at every input
        std::vector<int32_t> ids;
    };
    static constexpr size_t kGatherOnThreads = size_t{1} << 16;  // ids (256 KiB) from which helpers gather too
    std::unique_ptr<Where[]> where_;  // by input
    std::vector<Ids> ids_;  // by worker
};

// ------------------------------------------------------------------------------------------- Core

struct Core {
    Pipeline pipeline;
    Decoder decoder;
    std::shared_ptr<TokenTable> table = std::make_shared<TokenTable>();
    std::vector<uint8_t> special;  // by id (the first entries of the table): a special added token
    Workspace workspace;           // for single calls, which hold the GIL
    Input input;

    explicit Core(nb::dict d) {
        nb::list entries = nb::borrow<nb::list>(d["token_table"]);
        table->reserve(entries);
        for (nb::handle s : entries) table->add(s);
        Pipeline& p = pipeline;
        if (!d["normalizer"].is_none()) {
            nb::dict n = nb::borrow<nb::dict>(d["normalizer"]);
            CharTable classes;
            build_table(classes, n["classes"]);
            p.normalizer = std::make_unique<Normalizer>(std::move(classes), read_forms(n["forms"]));
        }
        if (!d["pre_tokenizer"].is_none()) {
            nb::dict t = nb::borrow<nb::dict>(d["pre_tokenizer"]);
            auto pre = std::make_unique<PreTokenizer>();
            const std::string kind = nb::cast<std::string>(t["kind"]);
            pre->kind = kind == "bert" ? PreTokenizer::kBert
                        : kind == "byte_level" ? PreTokenizer::kByteLevel : PreTokenizer::kMetaspace;
            if (!t["classes"].is_none()) build_table(pre->classes, t["classes"]);
            pre->add_prefix_space = nb::cast<bool>(t["add_prefix_space"]);
            pre->use_regex = nb::cast<bool>(t["use_regex"]);
            pre->replacement = to_str(t["replacement"])[0];
            pre->prepend = static_cast<PreTokenizer::Prepend>(nb::cast<int>(t["prepend"]));
            pre->split_words = nb::cast<bool>(t["split"]);
            p.pre_tokenizer = std::move(pre);
        }
        p.model = build_model(nb::borrow<nb::dict>(d["model"]));
        if (!d["byte_chars"].is_none()) {
            p.byte_level = true;
            p.byte_chars = read_bytes(d["byte_chars"]);
        }
        p.cache_single_characters();
        p.unk_as_text = nb::cast<int32_t>(d["unk_as_text"]);
        if (!d["word_chars"].is_none()) build_table(p.word_chars, d["word_chars"]);
        if (!d["spaces"].is_none()) build_table(p.spaces, d["spaces"]);
        p.raw_added = AddedMatcher(read_added(d["raw_added"]), &p.word_chars, &p.spaces);
        p.normalized_added = AddedMatcher(read_added(d["normalized_added"]), &p.word_chars, &p.spaces);
        read_post(d["post"]);
        for (char32_t c : to_str(d["space_chars"])) p.spaces_list.push_back(c);
        read_decoder(d["decoder"]);
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

    void read_post(nb::handle post) {
        if (post.is_none()) return;
        nb::dict d = nb::borrow<nb::dict>(post);
        PostProcessor& pp = pipeline.post;
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

    void read_decoder(nb::handle dec) {
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

    void refresh_ends() {  // leading / trailing spaces of every token-table entry
        pipeline.leads.resize(table->size());
        pipeline.trails.resize(table->size());
        Str text;
        for (size_t i = 0; i < table->size(); ++i) {
            table->text(i, text);
            pipeline.leads[i] = static_cast<uint16_t>(count_ends(text, pipeline.spaces_list, true));
            pipeline.trails[i] = static_cast<uint16_t>(count_ends(text, pipeline.spaces_list, false));
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
        pipeline.leads.push_back(static_cast<uint16_t>(count_ends(pad_text, pipeline.spaces_list, true)));
        pipeline.trails.push_back(static_cast<uint16_t>(count_ends(pad_text, pipeline.spaces_list, false)));
        pad.length = p[4].is_none() ? -1 : nb::cast<int64_t>(p[4]);
        pad.multiple = p[5].is_none() ? 0 : nb::cast<int64_t>(p[5]);
    }

    nb::object wrap(Enc&& e) { return nb::cast(Encoding{std::move(e), table, {}}, nb::rv_policy::move); }

    nb::object encode(nb::handle text, nb::handle pair, bool add_special_tokens) {
        Input& in = input;  // reused: single calls hold the GIL
        in.has_pair = false;
        if (!read_text(text.ptr(), in.text)) return nb::none();
        if (!pair.is_none()) {
            if (!read_text(pair.ptr(), in.pair)) return nb::none();
            in.has_pair = true;
        }
        Enc out;
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
        return ok ? wrap(std::move(out)) : nb::none();
    }

    // -> (encodings, indices of the inputs left to Python, whose entries are None)
    nb::tuple encode_batch(nb::list inputs, bool add_special_tokens, int threads) {
        PyBatch batch(inputs, table);
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

    nb::class_<Encoding> enc(m, "Encoding");
    const char* names[] = {"ids", "tokens", "offsets", "type_ids", "attention_mask", "special_tokens_mask",
                           "overflowing"};
    for (int f = 0; f < 7; ++f)
        enc.def_prop_rw(
            names[f], [f](Encoding& e) { return e.get(f); },
            [f](Encoding& e, nb::object value) { e.set(f, std::move(value)); });
    enc.def("__len__", &Encoding::length);
    enc.def("__reduce__", [](Encoding& e) {  // unpickles as the pure-Python Encoding
        nb::object cls = nb::module_::import_("llmlab.tokenizer.encoding").attr("Encoding");
        nb::list args;
        for (int f = 0; f < 7; ++f) args.append(e.get(f));
        return nb::make_tuple(cls, nb::tuple(args));
    });
    enc.def("__getattr__", [](Encoding& e, nb::str name) -> nb::object {
        // Anything else (word ids, char_to_token, ...) comes from the pure-Python Encoding of the same fields.
        const std::string n = nb::cast<std::string>(name);
        if (n.rfind("__", 0) == 0) throw nb::attribute_error(n.c_str());
        nb::object cls = nb::module_::import_("llmlab.tokenizer.encoding").attr("Encoding");
        nb::object plain = cls(e.get(0), e.get(1), e.get(2), e.get(3), e.get(4), e.get(5), e.get(6));
        return plain.attr(name);
    });
    enc.def("__eq__", [](Encoding& e, nb::handle other) -> nb::object {
        static const char* names[] = {"ids", "tokens", "offsets", "type_ids", "attention_mask",
                                      "special_tokens_mask", "overflowing"};
        for (int f = 0; f < 7; ++f) {
            if (!nb::hasattr(other, names[f])) return nb::borrow(Py_NotImplemented);
            if (!e.get(f).equal(other.attr(names[f]))) return nb::bool_(false);
        }
        return nb::bool_(true);
    });
    enc.def("__repr__", [](Encoding& e) {
        static const char* names[] = {"ids", "tokens", "offsets", "type_ids", "attention_mask",
                                      "special_tokens_mask", "overflowing"};
        std::string out = "Encoding(";
        for (int f = 0; f < 7; ++f) {
            if (f) out += ", ";
            out += names[f];
            out += "=";
            out += nb::cast<std::string>(nb::repr(e.get(f)));
        }
        return out + ")";
    });

    nb::class_<Core>(m, "Core")
        .def(nb::init<nb::dict>())
        .def("encode", &Core::encode, nb::arg("text"), nb::arg("pair").none(), nb::arg("add_special_tokens"))
        .def("encode_batch", &Core::encode_batch)
        .def("encode_batch_ids", &Core::encode_batch_ids)
        .def("decode", &Core::decode)
        .def("set_truncation", &Core::set_truncation, nb::arg("truncation").none())
        .def("set_padding", &Core::set_padding, nb::arg("padding").none());
}
