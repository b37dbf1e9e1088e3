// The Python side of an encoding (nanobind): the lazy Encoding the core returns, and the token table it
// reads its strs and ints from.
//
// An Encoding holds the C++ vectors and turns each field into a Python list only when it is read (then that
// list is the field); a batch builds its ids lists at once (py_batch.h). Anything else (word ids,
// char_to_token, ...) and pickling go through the pure-Python Encoding (encoding.py) of the same fields.
#pragma once

#include <nanobind/nanobind.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "encoding.h"
#include "py_text.h"

namespace llmlab {

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

// Memory into which one worker of a batch packs encodings one after another (PackedEnc): one allocation for
// many, freed with the last encoding in it. Made and freed one per text, the blocks cost more than the rest
// of dropping a batch's Encodings (callgrind: free 140 of 270 instructions an Encoding), and that drop is
// serial (Python frees them after the batch). An Encoding kept alive keeps its slab (kSize bytes at most).
class Slab {
  public:
    static constexpr size_t kSize = size_t{64} << 10;  // bytes, header included
    // `bytes` (a multiple of 4, at most kSize / 4) for an encoding, from `slab`, which is replaced by a new
    // one when it is full (or null) and then left to its encodings; `slab` stays the caller's.
    static int32_t* take(Slab*& slab, size_t bytes);
    // An encoding in it (or its worker, once it adds no more) is done with it: the last frees it.
    void release() {
        if (live_.fetch_sub(1, std::memory_order_acq_rel) == 1) ::operator delete(this);
    }

  private:
    Slab() = default;
    std::atomic<size_t> live_{1};  // its encodings, + 1 while its worker may still add to it
    size_t used_ = 0;              // bytes after the header
};

// What dropped batch Encodings leave (see Encoding::~Encoding): their fields (lists), their references to the
// token table and their slabs wait here until the next batches' calling threads free them while their helpers
// encode (PyBatch::take: as many lists as each makes), a garbage collection starts (core.py registers
// free_dropped as a gc callback), a tokenizer's core is freed (~Core), or kDropped of them wait. All with the
// GIL held.
void drop_later(nb::object* fields, size_t count, std::shared_ptr<TokenTable>&& table, Slab* slab) noexcept;
// Frees the tables' references and the slabs waiting, and `fields` of the fields (the last dropped first).
void free_dropped(size_t fields = SIZE_MAX) noexcept;

// An encoding as an Encoding keeps it: the per-token arrays in one block (one allocation to make and to
// free, in one place, where six vectors were six, wherever the heap had room: in a long-running process's
// fragmented heap that made a batch on one thread half as fast), in a slab of the batch's (see Slab) or an
// allocation of its own; the rare parts (texts written as they are, windows) as they were.
class PackedEnc {
  public:
    PackedEnc() = default;
    // `slab`: a batch worker's (see Slab::take); null: a block of its own.
    explicit PackedEnc(const Enc& e, Slab** slab = nullptr);
    PackedEnc(PackedEnc&& other) noexcept { *this = std::move(other); }
    PackedEnc& operator=(PackedEnc&& other) noexcept;
    PackedEnc(const PackedEnc&) = delete;
    PackedEnc& operator=(const PackedEnc&) = delete;
    ~PackedEnc() { free(); }

    size_t size() const { return n_; }
    // Its slab, which it no longer releases (null: it has a block of its own, which it still frees).
    Slab* leave_slab() {
        if (!slab_) return nullptr;
        block_ = nullptr;
        return std::exchange(slab_, nullptr);
    }
    const int32_t* ids() const { return block_; }
    const int32_t* tokens() const { return block_ + n_; }
    const int32_t* type_ids() const { return block_ + 2 * n_; }
    const int32_t* offsets() const { return block_ + 3 * n_; }  // (start, end) of token i at 2i, 2i + 1
    const uint8_t* attention() const { return reinterpret_cast<const uint8_t*>(block_ + 5 * n_); }
    const uint8_t* special() const { return attention() + n_; }

    std::vector<Str> customs;
    std::vector<Enc> overflowing;

  private:
    void free();
    size_t n_ = 0;
    int32_t* block_ = nullptr;  // 5n int32, then 2n bytes
    Slab* slab_ = nullptr;      // where block_ lies (null: block_ is an allocation of its own, new[])
};

struct Encoding {
    Encoding(const Enc& e, std::shared_ptr<TokenTable> t) : enc(e), table(std::move(t)) {}
    // `batch`: made by a batch (see ~Encoding)
    Encoding(PackedEnc&& e, std::shared_ptr<TokenTable> t, bool batch = false)
        : enc(std::move(e)), table(std::move(t)), batch(batch) {}
    Encoding(Encoding&&) = default;
    // A batch's Encoding leaves its lists, its reference to the table and its slab to be freed later
    // (drop_later): Python drops a batch's Encodings and their lists after the call, serial work while the helpers
    // wait (freeing 1,000 lists of English ids took ~30 us, ~6% of a batch on 2 threads, and the two atomic
    // releases ~5), which the next batch's calling thread does while its helpers encode.
    ~Encoding() {
        if (batch) drop_later(fields, 7, std::move(table), enc.leave_slab());
    }

    PackedEnc enc;
    std::shared_ptr<TokenTable> table;
    bool batch = false;
    nb::object fields[7];  // the Python lists, once read (or set)

    enum Field { kIds, kTokens, kOffsets, kTypeIds, kAttention, kSpecial, kOverflowing };

    nb::object get(int f) {
        if (!fields[f].is_valid()) fields[f] = build(f);
        else if (!PyObject_GC_IsTracked(fields[f].ptr())) PyObject_GC_Track(fields[f].ptr());  // (see build_unseen)
        return fields[f];
    }
    // Field f built now, before anyone reads it (a batch's ids), and kept out of the garbage collector's sight
    // until it is read: a batch makes a list per text while the collector is off (pipeline.py), and the first
    // container Python makes afterwards starts a collection that went through all of them, ids and all (9% of
    // `encode_batch` on 1 thread, WordPiece English, in a perf profile; on 2 threads it is serial). Lists of
    // ints make no cycles; once read, the list is tracked like any other (get).
    void build_unseen(int f) {
        fields[f] = build(f);
        PyObject_GC_UnTrack(fields[f].ptr());
    }
    void set(int f, nb::object value) { fields[f] = std::move(value); }

    nb::object build(int f);  // field f as a Python list
    size_t length() { return fields[kIds].is_valid() ? nb::len(fields[kIds]) : enc.size(); }
};

// The Encoding class of the module.
void bind_encoding(nb::module_& m);

}  // namespace llmlab
