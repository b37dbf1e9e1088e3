// A batch's inputs and results on the Python side (batch.h's BatchIO): a list of strs or (text, pair) tuples
// in, Encodings (PyBatch) or every input's ids in one buffer (IdsBatch) out.
#pragma once

#include <nanobind/nanobind.h>

#include <memory>
#include <vector>

#include "batch.h"
#include "py_encoding.h"

namespace llmlab {

// The inputs of a batch (batch.h): a list of strs or (text, pair) tuples, kept alive here; workers read the
// strs without the GIL.
class PyInputs : public BatchIO {
  public:
    explicit PyInputs(nb::list inputs);  // (holding the GIL)
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
    void gather(size_t i, PyObject* item);

    size_t chars_ = 0;
    std::vector<nb::object> texts_, pairs_;  // (an empty pair: a single text)
};

// A batch whose results are Encodings: the caller turns each finished encoding into one, its ids list built
// at once (the field read most, and making it here overlaps the other workers' encoding; read later, it would
// be serial work after the batch).
class PyBatch final : public PyInputs {
  public:
    // `pad`: the batch is padded (its encodings are kept until every length is known).
    PyBatch(nb::list inputs, std::shared_ptr<TokenTable> table, bool pad)
        : PyInputs(inputs), table_(std::move(table)), keep_(pad),
          encodings_(nb::steal(PyList_New(static_cast<Py_ssize_t>(n_)))) {
        if (!encodings_.is_valid()) throw nb::python_error();
        if (!keep_) packed_.resize(n_);
    }

    PyBatch(const PyBatch&) = delete;
    PyBatch& operator=(const PyBatch&) = delete;
    ~PyBatch() override {
        for (WorkerSlab& w : slabs_)
            if (w.slab) w.slab->release();
    }

    // Unpadded, each worker encodes into an Enc of its own (reused: it allocates only while it grows) and packs
    // each encoding at once, into a slab of its own (see Slab).
    bool keeps_encodings() const override { return keep_; }
    void start(int threads) override { slabs_.resize(static_cast<size_t>(threads)); }
    void finished(size_t i, int worker, const Enc& e) override {
        packed_[i] = PackedEnc(e, &slabs_[static_cast<size_t>(worker)].slab);
    }
    void take(const std::vector<Span>& spans) override;

    // (Encodings, indices of the inputs left to Python, whose entries are None).
    nb::tuple result();

  private:
    // A new Encoding made in place (nb::cast would look the type up and move the fields once more).
    PyObject* wrap(PackedEnc&& e);

    std::shared_ptr<TokenTable> table_;
    const bool keep_;
    std::vector<PackedEnc> packed_;  // by input (unpadded)
    struct alignas(64) WorkerSlab {  // (a cache line each: a worker writes its own at every input)
        Slab* slab = nullptr;
    };
    std::vector<WorkerSlab> slabs_;  // by worker: the slab it packs into
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
    // consecutive inputs at a time (one copy per run instead of per input).
    nb::object result();

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

}  // namespace llmlab
