// Python bindings (nanobind) of the training kernels: the BPE merge loop (bpe_trainer.h).
// The trainers in src/llmlab/tokenizer/bpe/trainer.py and unigram/ call these when the core is available and
// run their own Python otherwise; tests/tokenizer/test_core_train*.py prove both give the same result.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include "bpe_trainer.h"

namespace nb = nanobind;

namespace llmlab {
namespace {

template <class T>
using Array = nb::ndarray<const T, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

Str str_of(nb::handle o) {  // a str's code points (lone surrogates included: tokens come from Python strs)
    Py_ssize_t n = 0;
    Py_UCS4* data = PyUnicode_AsUCS4Copy(o.ptr());
    if (!data) throw nb::python_error();
    n = PyUnicode_GET_LENGTH(o.ptr());
    Str s(data, data + n);
    PyMem_Free(data);
    return s;
}

nb::object new_str(const Str& s) {
    return nb::steal(PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, s.data(), static_cast<Py_ssize_t>(s.size())));
}

nb::tuple learn_bpe_merges(Array<uint32_t> codes, Array<int64_t> lengths, Array<int64_t> counts,
                           Array<int32_t> first_id, Array<int32_t> rest_id, nb::list tokens, int64_t vocab_size,
                           int64_t min_frequency, nb::str prefix, int64_t max_token_length, nb::object progress) {
    if (lengths.shape(0) != counts.shape(0) || first_id.shape(0) != rest_id.shape(0))
        throw nb::value_error("learn_bpe_merges: lengths/counts or the two id tables differ in size");
    int64_t total = 0;
    for (size_t w = 0; w < lengths.shape(0); ++w) total += lengths.data()[w];
    if (total != static_cast<int64_t>(codes.shape(0)))
        throw nb::value_error("learn_bpe_merges: the lengths do not add up to the number of code points");
    BpeWords words{codes.data(),    lengths.data(),  counts.data(), lengths.shape(0),
                   first_id.data(), rest_id.data(), first_id.shape(0)};
    std::vector<Str> table;
    for (nb::handle t : tokens) table.push_back(str_of(t));
    BpeOptions options{vocab_size, min_frequency, str_of(prefix), max_token_length};
    std::function<void(size_t, size_t)> report;
    if (!progress.is_none()) report = [&](size_t done, size_t wanted) { progress(done, wanted); };
    BpeMerges out = bpe_learn_merges(words, std::move(table), options, report);
    nb::list merges, added;
    for (uint64_t key : out.merges) merges.append(key);
    for (const Str& s : out.new_tokens) added.append(new_str(s));
    return nb::make_tuple(merges, added, out.peak_bytes);
}

}  // namespace

void bind_training(nb::module_& m) {
    m.def("learn_bpe_merges", &learn_bpe_merges, nb::arg("codes"), nb::arg("lengths"), nb::arg("counts"),
          nb::arg("first_id"), nb::arg("rest_id"), nb::arg("tokens"), nb::arg("vocab_size"),
          nb::arg("min_frequency"), nb::arg("prefix"), nb::arg("max_token_length"), nb::arg("progress").none(),
          "BPE merges of the counted words (bpe_trainer.h): (merged pair keys, new tokens, peak state bytes).");
}

}  // namespace llmlab
