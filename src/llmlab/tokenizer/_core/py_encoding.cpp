// The lazy Encoding and its bindings; see py_encoding.h.
#include "py_encoding.h"

#include <nanobind/stl/string.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <new>
#include <string>
#include <utility>

namespace llmlab {

int32_t* Slab::take(Slab*& slab, size_t bytes) {
    constexpr size_t room = kSize - sizeof(Slab);
    if (!slab || slab->used_ + bytes > room) {
        Slab* fresh = new (::operator new(kSize)) Slab;
        if (slab) slab->release();
        slab = fresh;
    }
    auto* at = reinterpret_cast<int32_t*>(reinterpret_cast<char*>(slab + 1) + slab->used_);
    slab->used_ += bytes;
    slab->live_.fetch_add(1, std::memory_order_relaxed);
    return at;
}

namespace {
constexpr size_t kDropped = size_t{1} << 14;  // fields (or Encodings) waiting at most (~4 MiB of English ids)
struct Dropped {
    std::vector<PyObject*> fields;
    std::vector<std::shared_ptr<TokenTable>> tables;
    std::vector<Slab*> slabs;
};
Dropped& dropped() {
    static auto* waiting = new Dropped;  // (never destroyed: the process may end with some)
    return *waiting;
}
}  // namespace

void drop_later(nb::object* fields, size_t count, std::shared_ptr<TokenTable>&& table, Slab* slab) noexcept {
    Dropped& waiting = dropped();
    if (waiting.fields.size() >= kDropped || waiting.tables.size() >= kDropped) free_dropped();
    try {
        for (size_t f = 0; f < count; ++f)
            if (fields[f].is_valid()) {
                waiting.fields.push_back(fields[f].ptr());
                fields[f].release();
            }
        if (table) waiting.tables.push_back(std::move(table));
        if (slab) waiting.slabs.push_back(std::exchange(slab, nullptr));
    } catch (...) {  // (no memory to wait in: the rest is freed now; fields not taken stay with the Encoding)
        table.reset();
        if (slab) slab->release();
    }
}

void free_dropped(size_t fields) noexcept {
    Dropped& waiting = dropped();
    std::vector<std::shared_ptr<TokenTable>> tables = std::exchange(waiting.tables, {});
    std::vector<Slab*> slabs = std::exchange(waiting.slabs, {});
    for (size_t k = 0; k < fields && !waiting.fields.empty(); ++k) {  // (the last dropped first)
        PyObject* field = waiting.fields.back();
        waiting.fields.pop_back();
        Py_DECREF(field);  // (freeing a list of Encodings drops more: they wait behind, or are freed now)
    }
    for (Slab* slab : slabs) slab->release();
}  // (then the tables: their last reference frees one, its Python objects with it)

PackedEnc::PackedEnc(const Enc& e, Slab** slab) : customs(e.customs), overflowing(e.overflowing), n_(e.size()) {
    const size_t words = 5 * n_ + (2 * n_ + 3) / 4;
    if (slab && words * 4 <= Slab::kSize / 4) {
        block_ = Slab::take(*slab, words * 4);
        slab_ = *slab;
    } else {
        block_ = new int32_t[words];
    }
    int32_t* to = block_;
    to = std::copy(e.ids.begin(), e.ids.end(), to);
    to = std::copy(e.tokens.begin(), e.tokens.end(), to);
    to = std::copy(e.type_ids.begin(), e.type_ids.end(), to);
    for (const auto& [start, end] : e.offsets) {
        *to++ = start;
        *to++ = end;
    }
    auto* bytes = reinterpret_cast<uint8_t*>(to);
    std::copy(e.special.begin(), e.special.end(), std::copy(e.attention.begin(), e.attention.end(), bytes));
}

PackedEnc& PackedEnc::operator=(PackedEnc&& other) noexcept {
    if (this != &other) {
        free();
        customs = std::move(other.customs);
        overflowing = std::move(other.overflowing);
        n_ = std::exchange(other.n_, 0);
        block_ = std::exchange(other.block_, nullptr);
        slab_ = std::exchange(other.slab_, nullptr);
    }
    return *this;
}

void PackedEnc::free() {
    if (slab_)
        slab_->release();
    else
        delete[] block_;
    block_ = nullptr;
    slab_ = nullptr;
}

nb::object Encoding::build(int f) {
    const size_t n = enc.size();
    PyObject* list = PyList_New(f == kOverflowing ? enc.overflowing.size() : n);
    if (!list) throw nb::python_error();
    if (f == kIds) {  // the field read most: a loop of its own
        for (size_t i = 0; i < n; ++i) {
            PyObject* item = table->int_of(enc.ids()[i]);
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
                item = table->int_of(enc.ids()[i]);
                break;
            case kTokens: {
                const int32_t t = enc.tokens()[i];
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
                    PyTuple_SET_ITEM(item, 0, PyLong_FromLong(enc.offsets()[2 * i]));
                    PyTuple_SET_ITEM(item, 1, PyLong_FromLong(enc.offsets()[2 * i + 1]));
                }
                break;
            case kTypeIds:
                item = PyLong_FromLong(enc.type_ids()[i]);
                break;
            case kAttention:
                item = PyLong_FromLong(enc.attention()[i]);
                break;
            case kSpecial:
                item = PyLong_FromLong(enc.special()[i]);
                break;
            default: {
                Encoding window(enc.overflowing[i], table);
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

namespace {

const char* const kFieldNames[] = {"ids", "tokens", "offsets", "type_ids", "attention_mask", "special_tokens_mask",
                                   "overflowing"};

// The C++ exception being handled, as the Python error (in the functions Python calls directly: the type's slots).
void restore_as_python_error() {
    try {
        throw;
    } catch (nb::python_error& e) {
        e.restore();
    } catch (const std::bad_alloc&) {
        PyErr_NoMemory();
    } catch (const std::exception& e) {
        PyErr_SetString(PyExc_RuntimeError, e.what());
    } catch (...) {
        PyErr_SetString(PyExc_RuntimeError, "an unknown C++ exception");
    }
}

// The fields as the type's own attribute descriptors (tp_getset), not bound functions: reading `e.ids` took
// 31 ns instead of 56 through a function binding (timeit), once per text of a batch (serial: Python reads them
// after the batch) and once per `encode` call.
PyObject* get_field(PyObject* self, void* field) {
    try {
        return nb::inst_ptr<Encoding>(self)->get(static_cast<int>(reinterpret_cast<intptr_t>(field))).release().ptr();
    } catch (...) {
        restore_as_python_error();
    }
    return nullptr;
}

int set_field(PyObject* self, PyObject* value, void* field) {
    if (!value) {
        PyErr_SetString(PyExc_AttributeError, "an Encoding's fields cannot be deleted");
        return -1;
    }
    nb::inst_ptr<Encoding>(self)->set(static_cast<int>(reinterpret_cast<intptr_t>(field)), nb::borrow(value));
    return 0;
}

PyGetSetDef field_descriptors[] = {
#define LLMLAB_FIELD(f) {kFieldNames[f], get_field, set_field, nullptr, reinterpret_cast<void*>(intptr_t{f})}
    LLMLAB_FIELD(0), LLMLAB_FIELD(1), LLMLAB_FIELD(2), LLMLAB_FIELD(3), LLMLAB_FIELD(4), LLMLAB_FIELD(5), LLMLAB_FIELD(6),
#undef LLMLAB_FIELD
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

// Attribute lookup: the type's own attributes (the fields, the methods) first, and anything else (word ids,
// char_to_token, ...) from the pure-Python Encoding of the same fields. As the type's tp_getattro, not a
// `__getattr__` method: with one, Python looked up `__getattr__` and `__getattribute__` in the type before
// every read of a field (slot_tp_getattr_hook): `e.ids` 29-33 -> 24-27 ns, the ids of 1,000 Encodings read in
// 31-35 -> 27-28 us (timeit, processes of the two builds in turn). `ids`, read once per text after every
// batch (serial), is found by the name's pointer before the type's lookup: 21.4 -> 13.9 us per 1,000 (timeit).
PyObject* get_attribute(PyObject* self, PyObject* name) {
    static PyObject* const ids = PyUnicode_InternFromString("ids");  // (the name Python's code passes: interned)
    if (name == ids) return get_field(self, reinterpret_cast<void*>(intptr_t{Encoding::kIds}));
    PyObject* found = PyObject_GenericGetAttr(self, name);
    if (found || !PyErr_ExceptionMatches(PyExc_AttributeError)) return found;
    const bool dunder = PyUnicode_GET_LENGTH(name) >= 2 && PyUnicode_READ_CHAR(name, 0) == '_' &&
                        PyUnicode_READ_CHAR(name, 1) == '_';  // (name: a str, as PyObject_GetAttr checked)
    if (dunder) return nullptr;  // (the AttributeError stays)
    PyErr_Clear();
    try {
        Encoding& e = *nb::inst_ptr<Encoding>(self);
        nb::object cls = nb::module_::import_("llmlab.tokenizer.encoding").attr("Encoding");
        nb::object plain = cls(e.get(0), e.get(1), e.get(2), e.get(3), e.get(4), e.get(5), e.get(6));
        return PyObject_GetAttr(plain.ptr(), name);
    } catch (...) {
        restore_as_python_error();
    }
    return nullptr;
}

PyType_Slot encoding_slots[] = {{Py_tp_getset, field_descriptors},
                                 {Py_tp_getattro, reinterpret_cast<void*>(get_attribute)},
                                 {0, nullptr}};

}  // namespace

void bind_encoding(nb::module_& m) {
    // Pooled: up to 4,096 dropped Encodings (~170 bytes each) are kept for the next ones, which skips both
    // the allocation and nanobind's instance registry (callgrind: dropping one took 365 instructions, 125 with
    // the pool and the slabs; making one 790 -> 670).
    m.def("free_dropped", [](nb::handle phase, nb::handle) {  // as a gc callback (phase, info)
        if (nb::str("start").equal(phase)) free_dropped();
    });
    nb::class_<Encoding> enc(m, "Encoding", nb::type_slots(encoding_slots), nb::pooled(4096));
    enc.def("__len__", &Encoding::length);
    enc.def("__reduce__", [](Encoding& e) {  // unpickles as the pure-Python Encoding
        nb::object cls = nb::module_::import_("llmlab.tokenizer.encoding").attr("Encoding");
        nb::list args;
        for (int f = 0; f < 7; ++f) args.append(e.get(f));
        return nb::make_tuple(cls, nb::tuple(args));
    });
    enc.def("__eq__", [](Encoding& e, nb::handle other) -> nb::object {
        for (int f = 0; f < 7; ++f) {
            if (!nb::hasattr(other, kFieldNames[f])) return nb::borrow(Py_NotImplemented);
            if (!e.get(f).equal(other.attr(kFieldNames[f]))) return nb::bool_(false);
        }
        return nb::bool_(true);
    });
    enc.def("__repr__", [](Encoding& e) {
        std::string out = "Encoding(";
        for (int f = 0; f < 7; ++f) {
            if (f) out += ", ";
            out += kFieldNames[f];
            out += "=";
            out += nb::cast<std::string>(nb::repr(e.get(f)));
        }
        return out + ")";
    });
}

}  // namespace llmlab
