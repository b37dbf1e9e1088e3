// Python bindings (nanobind) of the training kernels: word counting (word_counter.h), the BPE merge loop
// (bpe_trainer.h), and the Unigram trainer's suffix sort (unigram_seeds.h) and lattices (unigram_lattice.h).
// counting.py and the trainers in src/llmlab/tokenizer/bpe/trainer.py and unigram/ call these when the core is
// available and run their own Python otherwise; tests/tokenizer/test_core_count.py and test_core_train*.py
// prove both give the same result.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include "bpe_trainer.h"
#include "py_arrays.h"
#include "py_stages.h"
#include "py_text.h"
#include "unigram_lattice.h"
#include "unigram_seeds.h"
#include "word_counter.h"

namespace nb = nanobind;

namespace llmlab {

namespace {

template <class T>
using Array = nb::ndarray<const T, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

void check_words(const char* name, const Array<uint32_t>& codes, const Array<int64_t>& lengths,
                 const Array<int64_t>& counts) {
    if (lengths.shape(0) != counts.shape(0))
        throw nb::value_error((std::string(name) + ": lengths/counts differ in size").c_str());
    int64_t total = 0;
    for (size_t w = 0; w < lengths.shape(0); ++w) {
        if (lengths.data()[w] < 0) throw nb::value_error((std::string(name) + ": a negative length").c_str());
        total += lengths.data()[w];
    }
    if (total != static_cast<int64_t>(codes.shape(0)))
        throw nb::value_error((std::string(name) + ": the lengths do not add up to the number of code points").c_str());
}

nb::tuple learn_bpe_merges(Array<uint32_t> codes, Array<int64_t> lengths, Array<int64_t> counts,
                           Array<int32_t> first_id, Array<int32_t> rest_id, nb::list tokens, int64_t vocab_size,
                           int64_t min_frequency, nb::str prefix, int64_t max_token_length, nb::object progress) {
    if (first_id.shape(0) != rest_id.shape(0))
        throw nb::value_error("learn_bpe_merges: the two id tables differ in size");
    check_words("learn_bpe_merges", codes, lengths, counts);
    for (const Array<int32_t>* table : {&first_id, &rest_id})
        for (size_t c = 0; c < table->shape(0); ++c)
            if (table->data()[c] >= static_cast<int64_t>(nb::len(tokens)))
                throw nb::value_error("learn_bpe_merges: an id table names a token beyond the list");
    BpeWords words{codes.data(),    lengths.data(),  counts.data(), lengths.shape(0),
                   first_id.data(), rest_id.data(), first_id.shape(0)};
    std::vector<Str> table;
    for (nb::handle t : tokens) table.push_back(chars_of(t));
    BpeOptions options{vocab_size, min_frequency, chars_of(prefix), max_token_length};
    std::function<void(size_t, size_t)> report;
    if (!progress.is_none()) report = [&](size_t done, size_t wanted) { progress(done, wanted); };
    BpeMerges out = bpe_learn_merges(words, std::move(table), options, report);
    nb::list merges, added;
    for (uint64_t key : out.merges) merges.append(key);
    for (const Str& s : out.new_tokens) added.append(str_object(s));
    return nb::make_tuple(merges, added, out.peak_bytes);
}

// ---- word counting: the stages as core.py describes them (`_normalizer`, `_pre_tokenizer`)

// Counts the words of a list of lines; returns the indices of the lines left to Python.
nb::list add_lines(WordCounter& counter, nb::list lines) {
    nb::list skipped;
    Str line;
    for (size_t i = 0; i < lines.size(); ++i)
        if (!read_text(lines[i].ptr(), line) || !counter.add(line)) skipped.append(i);
    return skipped;
}

// (word -> count, indices of the lines left to Python) of a list of lines; the table is left empty.
nb::tuple count_lines(WordCounter& counter, nb::list lines) {
    nb::list skipped = add_lines(counter, lines);
    nb::dict counts;
    counter.drain([&](View word, int64_t n) { counts[str_object(word)] = nb::int_(n); });
    return nb::make_tuple(counts, skipped);
}

template <class T>
std::vector<T> to_vector(const Array<T>& a) {
    return std::vector<T>(a.data(), a.data() + a.shape(0));
}

UnigramLattice* new_lattice(Array<int64_t> start, Array<int64_t> end, Array<double> count, size_t n_nodes,
                            Array<int32_t> src, Array<int32_t> dst, Array<int32_t> piece) {
    if (start.shape(0) != end.shape(0) || start.shape(0) != count.shape(0) || src.shape(0) != dst.shape(0) ||
        src.shape(0) != piece.shape(0))
        throw nb::value_error("UnigramLattice: word arrays or edge arrays differ in length");
    for (size_t w = 0; w < start.shape(0); ++w)
        if (start.data()[w] < 0 || end.data()[w] < start.data()[w] || static_cast<size_t>(end.data()[w]) >= n_nodes)
            throw nb::value_error("UnigramLattice: a word outside the corpus");
    try {
        return new UnigramLattice(to_vector(start), to_vector(end), to_vector(count), n_nodes, src.data(),
                                  dst.data(), piece.data(), src.shape(0));
    } catch (const std::invalid_argument& e) {
        throw nb::value_error(e.what());
    }
}

void check_scores(const UnigramLattice& l, const Array<double>& scores) {
    if (scores.shape(0) < l.pieces() + 1)
        throw nb::value_error("UnigramLattice: expected a score for every piece, then the unknown node's");
}

}  // namespace

void bind_training(nb::module_& m) {
    nb::class_<WordCounter>(m, "WordCounter", "Counts the words of lines as a pipeline makes them (word_counter.h).")
        .def("__init__",
             [](WordCounter* self, nb::object normalizer, nb::object pre_tokenizer, nb::object byte_chars) {
                 std::array<char32_t, 256> chars{};
                 if (!byte_chars.is_none()) {
                     nb::list list = nb::borrow<nb::list>(byte_chars);
                     if (list.size() != 256) throw nb::value_error("WordCounter: byte_chars must have 256 entries");
                     for (size_t b = 0; b < 256; ++b) chars[b] = nb::cast<uint32_t>(list[b]);
                 }
                 new (self) WordCounter(read_normalizer(normalizer), read_pre_tokenizer(pre_tokenizer),
                                        !byte_chars.is_none(), chars);
             },
             nb::arg("normalizer").none(), nb::arg("pre_tokenizer").none(), nb::arg("byte_chars").none())
        .def("count", &count_lines, nb::arg("lines"),
             "(word -> count, indices of the lines left to Python: a lone surrogate, a character the normalizer "
             "leaves to Python) of these lines alone.")
        .def("add", &add_lines, nb::arg("lines"),
             "Count these lines into the table; returns the indices of the lines left to Python.")
        .def(
            "drain",
            [](WordCounter& c) {
                std::vector<uint32_t> codes;
                std::vector<int64_t> lengths, counts;
                c.drain_sorted(codes, lengths, counts);
                // memoryviews, not numpy arrays: training on the core never imports numpy (~10 MiB of RSS)
                return nb::make_tuple(owned_array<uint32_t, nb::memview>(std::move(codes)),
                                      owned_array<int64_t, nb::memview>(std::move(lengths)),
                                      owned_array<int64_t, nb::memview>(std::move(counts)));
            },
            "The table as a WordTable's (codes, lengths, counts) memoryviews, ascending by word; empties it.")
        .def("__len__", &WordCounter::size)
        .def_prop_ro("nbytes", &WordCounter::bytes);
    m.def("learn_bpe_merges", &learn_bpe_merges, nb::arg("codes"), nb::arg("lengths"), nb::arg("counts"),
          nb::arg("first_id"), nb::arg("rest_id"), nb::arg("tokens"), nb::arg("vocab_size"),
          nb::arg("min_frequency"), nb::arg("prefix"), nb::arg("max_token_length"), nb::arg("progress").none(),
          "BPE merges of the counted words (bpe_trainer.h): (merged pair keys, new tokens, peak state bytes).");
    m.def(
        "char_counts",
        [](Array<uint32_t> codes, Array<int64_t> lengths, Array<int64_t> counts) {
            check_words("char_counts", codes, lengths, counts);
            std::vector<uint32_t> chars;
            std::vector<double> weights;
            std::vector<int64_t> later;
            bpe_char_counts({codes.data(), lengths.data(), counts.data(), lengths.shape(0), nullptr, nullptr, 0},
                            chars, weights, later);
            return nb::make_tuple(owned_array<uint32_t, nb::memview>(std::move(chars)),
                                  owned_array<double, nb::memview>(std::move(weights)),
                                  owned_array<int64_t, nb::memview>(std::move(later)));
        },
        nb::arg("codes"), nb::arg("lengths"), nb::arg("counts"),
        "(distinct code points ascending, each one's count: its words' counts summed, where it first comes after a "
        "word's first character or -1) as memoryviews (bpe_trainer.h).");
    m.def(
        "sorted_suffixes",
        [](Array<int32_t> codes, Array<bool> keep, int width) {
            if (codes.shape(0) != keep.shape(0)) throw nb::value_error("sorted_suffixes: codes and keep differ in length");
            if (codes.shape(0) >= INT32_MAX) throw nb::value_error("sorted_suffixes: over 2^31 positions");
            std::vector<int32_t> order, common;
            {
                nb::gil_scoped_release unlocked;
                sorted_suffixes(codes.data(), codes.shape(0), keep.data(), width, order, common);
            }
            return nb::make_tuple(owned_array(std::move(order)), owned_array(std::move(common)));
        },
        nb::arg("codes"), nb::arg("keep"), nb::arg("width"),
        "The kept positions sorted by their first `width` code points, and each one's common prefix with the one "
        "before (unigram_seeds.h).");
    m.def(
        "branching",
        [](Array<int32_t> common, Array<double> weight, Array<int64_t> to_end, Array<int32_t> room, int max_len) {
            const size_t n = common.shape(0);
            if (weight.shape(0) != n || to_end.shape(0) != n || room.shape(0) != n)
                throw nb::value_error("branching: the arrays differ in length");
            Branching found;
            {
                nb::gil_scoped_release unlocked;
                found = branching(common.data(), weight.data(), to_end.data(), room.data(), n, max_len);
            }
            return nb::make_tuple(owned_array(std::move(found.length)), owned_array(std::move(found.first)),
                                  owned_array(std::move(found.last)), owned_array(std::move(found.score)));
        },
        nb::arg("common"), nb::arg("weight"), nb::arg("to_end"), nb::arg("room"), nb::arg("max_len"),
        "The candidate seeds of the sorted suffixes: (length, first, last, score) (unigram_seeds.h).");
    nb::class_<UnigramLattice>(m, "UnigramLattice", "The Unigram trainer's lattices (unigram_lattice.h).")
        .def("__init__",
             [](UnigramLattice* self, Array<int64_t> start, Array<int64_t> end, Array<double> count, size_t n_nodes,
                Array<int32_t> src, Array<int32_t> dst, Array<int32_t> piece) {
                 UnigramLattice* made = new_lattice(start, end, count, n_nodes, src, dst, piece);
                 new (self) UnigramLattice(std::move(*made));
                 delete made;
             })
        .def("keep", [](UnigramLattice& l, Array<bool> alive) { l.keep(alive.data(), alive.shape(0)); })
        .def("expected_counts",
             [](const UnigramLattice& l, Array<double> scores) {
                 check_scores(l, scores);
                 std::vector<double> counts;
                 {
                     nb::gil_scoped_release unlocked;
                     counts = l.expected_counts(scores.data(), scores.shape(0));
                 }
                 return owned_array(std::move(counts));
             })
        .def("viterbi_counts",
             [](const UnigramLattice& l, Array<double> scores) {
                 check_scores(l, scores);
                 std::vector<double> freq;
                 {
                     nb::gil_scoped_release unlocked;
                     freq = l.viterbi_counts(scores.data(), scores.shape(0));
                 }
                 return owned_array(std::move(freq));
             })
        .def("second_best",
             [](const UnigramLattice& l, Array<int64_t> reps, Array<int64_t> lengths, Array<double> scores) {
                 check_scores(l, scores);
                 if (reps.shape(0) != lengths.shape(0)) throw nb::value_error("UnigramLattice: reps and lengths differ");
                 for (size_t i = 0; i < reps.shape(0); ++i)
                     if (reps.data()[i] < 0 || lengths.data()[i] < 1 ||
                         static_cast<size_t>(reps.data()[i] + lengths.data()[i]) >= l.nodes())
                         throw nb::value_error("UnigramLattice: a piece occurrence outside the corpus");
                 UnigramLattice::SecondBest out;
                 {
                     nb::gil_scoped_release unlocked;
                     out = l.second_best(reps.data(), lengths.data(), reps.shape(0), scores.data(), scores.shape(0));
                 }
                 return nb::make_tuple(owned_array(std::move(out.score)), owned_array(std::move(out.win)),
                                       owned_array(std::move(out.token)));
             })
        .def_prop_ro("edges", &UnigramLattice::edges)
        .def_prop_ro("nbytes", &UnigramLattice::bytes);
}

}  // namespace llmlab
