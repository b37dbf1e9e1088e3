// Many texts through one Pipeline on threads: the compiled core's encode_batch.
//
// Reference: pipeline.py `Tokenizer.encode_batch` (one encode per input, then batch padding); the results are
// those of Pipeline::encode, input by input. Only the work is shared out:
// - the calling thread is a worker too, and it alone hands finished encodings back (py_batch.h turns them
//   into Python objects, which needs the GIL) while the other workers go on encoding: that serial part runs
//   beside the parallel one instead of after it;
// - workers take a few inputs at a time from a shared counter (fewer near the end, so that they finish
//   together), read each input themselves (BatchIO::read) and encode it;
// - they share one word cache, room for the batch's new words made in it first: a word one worker has split
//   is found by the others at once (none splits it again, nothing is merged after the batch).
// With padding on, nothing is handed over before every length is known (the batch's longest).
#pragma once

#include <cstddef>
#include <vector>

#include "pipeline.h"

namespace llmlab {

struct Span {  // inputs [begin, end)
    size_t begin, end;
};

// Where a batch's inputs come from and where its encodings go.
class BatchIO {
  public:
    virtual ~BatchIO() = default;
    // Input i into `in` (a buffer reused by one worker); false: the input is left to Python. Any worker
    // thread calls it, without the GIL.
    virtual bool read(size_t i, Input& in) = 0;
    // The encodings of the inputs in `spans` are final (out[i], ok[i]): only the calling thread calls it,
    // holding no lock of the batch, so it may take the GIL. Every input is handed over exactly once.
    virtual void take(const std::vector<Span>& spans) = 0;
    // False: the IO takes what it needs of each encoding as soon as it is made, in finished() (called by the
    // worker `worker` (0 .. threads - 1) that made it, without the GIL), and out[i] stays empty; each worker
    // then encodes into one Enc of its own, and `out` stays empty. Not with batch padding.
    virtual bool keeps_encodings() const { return true; }
    virtual void finished(size_t /*i*/, int /*worker*/, const Enc& /*e*/) {}
    // Called once before any input is read, with the number of workers.
    virtual void start(int /*threads*/) {}
};

// Inputs 0..n-1 of `io` (`chars` code points in all) on `threads` threads: out[i] is input i's encoding and
// ok[i] whether it was encoded (false: it goes to Python). Pads the batch when every input succeeded.
void encode_batch(Pipeline& pipeline, BatchIO& io, size_t n, size_t chars, bool add_special_tokens, int threads,
                  std::vector<Enc>& out, std::vector<uint8_t>& ok);

}  // namespace llmlab
