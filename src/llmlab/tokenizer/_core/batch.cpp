// Many texts on threads; see batch.h. Reference: pipeline.py `Tokenizer.encode_batch`.
#include "batch.h"

#include "helpers.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <shared_mutex>
#include <thread>

namespace llmlab {

namespace {

constexpr size_t kChunk = 16;        // inputs a worker takes at once (fewer near the end: see Batch::take)
constexpr size_t kHandOver = 256;    // finished inputs the caller gathers before it hands them over: each
                                     // hand-over takes the GIL once (fewer near the end: see Batch::call)
constexpr size_t kMinChars = 8000;   // a smaller batch is not worth a thread (English lines of a half-warm
                                     // word cache, per batch: ~5,400 characters 1.0-1.3x on 2 threads,
                                     // ~8,200 1.0-1.4x, ~13,300 1.3-1.5x; the last 254 lines of
                                     // gutenberg_en valid.txt, 11,700: 0.57-0.66x the time of 1 thread)
constexpr size_t kCharsPerNewWord = 12;  // room made in the word cache for a batch: a new word per so many
                                         // characters (cold batches of 1,000 English lines: one
                                         // per 23 in the first, per 26-46 after; with fewer, the rest
                                         // of the batch's new words go uncached)

class Batch {
  public:
    Batch(Pipeline& p, BatchIO& io, size_t n, int threads, bool add_special_tokens, std::vector<Enc>& out,
          std::vector<uint8_t>& ok)
        : p_(p), io_(io), n_(n), threads_(threads), add_special_(add_special_tokens), keep_(io.keeps_encodings()),
          out_(out), ok_(ok) {
        finished_.reserve(n_);  // (at most one span per input: a helper's push_back never throws)
    }

    // One thread: it holds the cache alone.
    void alone() {
        {
            std::unique_lock<std::shared_mutex> writing(p_.cache.mutex);
            Worker me;
            encode({0, n_}, me);
        }  // released before the hand-over: never wait for the GIL holding a lock that a GIL holder may want
        pad_if_all();
        io_.take({{0, n_}});
    }

    // The caller and threads_ - 1 helper threads, inserting new words together into room made first. The
    // helpers are woken before (a sleeping thread takes a while to run) and wait for the room. What a helper
    // threw (std::bad_alloc on a huge input) is thrown here once the batch is over, as it would have been
    // on one thread (a C++ exception leaving a thread would end the process).
    void together(size_t chars) {
        {
            Helpers helpers(threads_ - 1, [this](int w) { work(w); });  // (waits for them however this ends)
            {
                struct Open {  // lets the helpers in however the reserve ends (without room, nothing is cached)
                    std::atomic<bool>& room;
                    ~Open() { room.store(true, std::memory_order_release); }
                } open{room_made_};
                std::unique_lock<std::shared_mutex> writing(p_.cache.mutex);
                p_.cache.reserve(chars / kCharsPerNewWord);
            }
            call();
        }
        if (error_) std::rethrow_exception(error_);
    }

  private:
    // The next inputs to encode; false when none are left. Chunks shrink near the end (a quarter of each
    // worker's share of what is left) so that the workers finish close together.
    bool take(Span& s) {
        size_t start = next_.load(std::memory_order_relaxed);
        while (start < n_) {
            const size_t size = std::clamp<size_t>((n_ - start) / (4 * threads_), 1, kChunk);
            if (next_.compare_exchange_weak(start, start + size, std::memory_order_relaxed)) {
                s = {start, start + size};
                return true;
            }
        }
        return false;
    }

    struct Worker {
        int index = 0;
        Workspace ws;
        Input in;       // a buffer reused for every input
        Enc finished;   // where an input is encoded when the IO does not keep encodings (reused: its memory is
                        // allocated and freed by this thread alone)
    };

    void encode(Span s, Worker& w) {
        uint8_t ok[kChunk];  // (copied to ok_ a chunk at a time: the workers' spans may share a cache line of it)
        for (size_t from = s.begin; from < s.end; from += kChunk) {
            const size_t to = std::min(s.end, from + kChunk);
            for (size_t i = from; i < to; ++i) {
                Enc& e = keep_ ? out_[i] : w.finished;
                ok[i - from] = io_.read(i, w.in) && p_.encode(w.in, add_special_, false, e, w.ws);
                if (ok[i - from] && !keep_) io_.finished(i, w.index, e);
            }
            std::copy(ok, ok + (to - from), ok_.begin() + from);
        }
    }

    // A helper: encodes until no input is left.
    void work(int w) {
        auto room = [this] { return room_made_.load(std::memory_order_acquire); };
        if (!spin(room))
            while (!room()) std::this_thread::yield();
        std::shared_lock<std::shared_mutex> reading(p_.cache.mutex);
        if (w == 1) p_.cache.make_spare();  // (first: the caller starts encoding meanwhile)
        Worker me;
        me.index = w;
        me.ws.holds_cache = false;
        for (Span s; take(s);) {
            std::exception_ptr error;
            try {
                encode(s, me);
            } catch (...) {  // (the batch is thrown away: s counts as finished, whatever of it is not)
                error = std::current_exception();
            }
            std::lock_guard<std::mutex> guard(mutex_);
            if (error && !error_) error_ = error;
            finished_.push_back(s);  // published by the mutex: out_ and ok_ of s are complete
            finished_count_.store(finished_count_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
            finished_cv_.notify_one();
        }
    }

    // The caller: encodes like the others and hands over every kHandOver finished inputs (its own and the
    // others'), so that making the Python objects overlaps the other workers' encoding. It holds the cache
    // lock only while it encodes: io_.take waits for the GIL, and a thread holding the GIL may wait for the
    // lock (a single encode).
    void call() {
        Worker me;
        me.ws.holds_cache = false;
        const bool early = !p_.pad;  // batch padding needs every length first
        while (next_.load(std::memory_order_relaxed) < n_) {
            Span s;
            {
                std::shared_lock<std::shared_mutex> reading(p_.cache.mutex);
                if (!take(s)) break;
                encode(s, me);
            }
            add_ready(s);
            if (early && ready_count_ >= hand_over_at()) {
                collect(false);
                hand_over();
            }
        }
        while (handed_ + ready_count_ < n_) {  // the others' last inputs, handed over as they come
            collect(true);
            if (early) hand_over();
        }
        pad_if_all();
        hand_over();
    }

    // How many finished inputs the caller gathers before a hand-over: kHandOver, down to a chunk as the inputs
    // run out, so that little is left to hand over once the encoding is done (only the caller hands over:
    // what is left then is serial).
    size_t hand_over_at() const {
        const size_t left = n_ - std::min(n_, next_.load(std::memory_order_relaxed));
        return std::clamp(left / 2, kChunk, kHandOver);
    }

    void add_ready(Span s) {
        ready_.push_back(s);
        ready_count_ += s.end - s.begin;
    }

    // Moves the spans the other workers finished into ready_ (`wait`: at least one, waiting for it, watching
    // for it first: the last spans of a batch come within microseconds, and a thread that slept takes tens of
    // them to wake).
    void collect(bool wait) {
        if (wait) spin([this] { return finished_count_.load(std::memory_order_acquire) != collected_; });
        std::unique_lock<std::mutex> lock(mutex_);
        if (wait) finished_cv_.wait(lock, [this] { return !finished_.empty(); });
        for (Span s : finished_) add_ready(s);
        collected_ += finished_.size();
        finished_.clear();
    }

    void hand_over() {
        if (ready_.empty()) return;
        io_.take(ready_);
        handed_ += ready_count_;
        ready_.clear();
        ready_count_ = 0;
    }

    void pad_if_all() {
        if (!p_.pad || !std::all_of(ok_.begin(), ok_.end(), [](uint8_t k) { return k; })) return;
        std::vector<Enc*> encs;
        for (Enc& e : out_) encs.push_back(&e);
        pad_batch(encs, p_.padding);
    }

    Pipeline& p_;
    BatchIO& io_;
    const size_t n_;
    const int threads_;
    const bool add_special_;
    const bool keep_;  // the IO keeps the encodings in out_ (else it takes what it needs in finished())
    std::vector<Enc>& out_;
    std::vector<uint8_t>& ok_;
    alignas(64) std::atomic<size_t> next_{0};  // the first input no worker has taken (a cache line apart from
                                               // the fields above, which every input reads)
    std::atomic<bool> room_made_{false};       // the word cache has room for the batch's new words

    std::mutex mutex_;  // guards finished_ and error_
    std::condition_variable finished_cv_;
    std::vector<Span> finished_;  // by the helpers, not yet collected by the caller
    std::exception_ptr error_;    // the first a helper threw
    std::atomic<size_t> finished_count_{0};  // spans the helpers have finished (written under the mutex)
    size_t collected_ = 0;                   // of them, those the caller has collected

    std::vector<Span> ready_;  // the caller's: finished, not yet handed over
    size_t ready_count_ = 0, handed_ = 0;
};

}  // namespace

void encode_batch(Pipeline& pipeline, BatchIO& io, size_t n, size_t chars, bool add_special_tokens, int threads,
                  std::vector<Enc>& out, std::vector<uint8_t>& ok) {
    out.clear();
    if (io.keeps_encodings()) out.resize(n);  // (not assign(n, Enc{}): n copies of an empty encoding cost
                                              // as much as its vectors)
    ok.assign(n, 0);
    if (chars < kMinChars) threads = 1;
    threads = std::max(1, std::min<int>(threads, static_cast<int>((n + kChunk - 1) / kChunk)));
    io.start(threads);
    Batch batch(pipeline, io, n, threads, add_special_tokens, out, ok);
    if (threads == 1)
        batch.alone();
    else
        batch.together(chars);
}

}  // namespace llmlab
