// A batch's inputs and results on the Python side; see py_batch.h.
#include "py_batch.h"

#include <algorithm>
#include <atomic>
#include <new>

#include "helpers.h"
#include "py_arrays.h"

namespace llmlab {

PyInputs::PyInputs(nb::list inputs) : n_(inputs.size()), texts_(n_), pairs_(n_) {
    for (size_t i = 0; i < n_; ++i) gather(i, PyList_GET_ITEM(inputs.ptr(), i));
}

void PyInputs::gather(size_t i, PyObject* item) {
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

void PyBatch::take(const std::vector<Span>& spans) {
    nb::gil_scoped_acquire gil;
    if (failed_) return;
    size_t made = 0;
    try {
        for (const Span& s : spans) {
            for (size_t i = s.begin; i < s.end; ++i)
                PyList_SET_ITEM(encodings_.ptr(), i,
                                ok[i] ? wrap(keep_ ? PackedEnc(out[i]) : std::move(packed_[i])) : Py_NewRef(Py_None));
            made += s.end - s.begin;
        }
    } catch (nb::python_error& e) {  // (the batch goes on without the GIL: raised by result())
        e.restore();
        failed_ = true;
    } catch (...) {
        PyErr_NoMemory();
        failed_ = true;
    }
    // What the last batches' Encodings left, freed here while the helpers go on encoding (see
    // Encoding::~Encoding): as many of their lists as lists were made just now, after making them. Python's
    // collector counts the containers made minus those freed (never below 0) and collects once the count
    // passes 700: freeing the last batch's 1,000 id lists first, then making 1,000, left it at ~1,000 after
    // every batch, and a collection ran as the caller went on (serial; gen-0 collections in a pass of
    // WordPiece English batches: 10 -> 0.2, Python's time between two batches on 2 threads 67 -> 55 us).
    free_dropped(made);
}

nb::tuple PyBatch::result() {
    if (failed_) throw nb::python_error();
    nb::list missing;
    for (size_t i = 0; i < n_; ++i)
        if (!ok[i]) missing.append(i);
    return nb::make_tuple(encodings_, missing);
}

PyObject* PyBatch::wrap(PackedEnc&& e) {
    nb::object inst = nb::inst_alloc(type_);
    if (!inst.is_valid()) throw nb::python_error();
    Encoding* enc = new (nb::inst_ptr<Encoding>(inst)) Encoding(std::move(e), table_, true);
    nb::inst_mark_ready(inst);  // (from here on the instance destroys what it holds)
    enc->build_unseen(Encoding::kIds);
    return inst.release().ptr();
}

nb::object IdsBatch::result() {
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

}  // namespace llmlab
