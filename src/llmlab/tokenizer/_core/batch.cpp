// Many texts on threads; see batch.h. Reference: pipeline.py `Tokenizer.encode_batch`.
#include "batch.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <shared_mutex>
#include <system_error>
#include <thread>

namespace llmlab {

namespace {

constexpr size_t kChunk = 16;        // inputs a worker takes at once (fewer near the end: see Batch::take)
constexpr size_t kHandOver = 256;    // finished inputs the caller gathers before it hands them over: each
                                     // hand-over takes the GIL once, and those left at the end (half of it on
                                     // average) are handed over while worker 1 merges the caches (English:
                                     // the merge after 1,000 lines costs about as much as 200 Encodings)
constexpr size_t kMinChars = 20000;  // a smaller batch is not worth a thread

class Batch {
  public:
    Batch(Pipeline& p, BatchIO& io, size_t n, int threads, bool add_special_tokens, std::vector<Enc>& out,
          std::vector<uint8_t>& ok)
        : p_(p), io_(io), n_(n), threads_(threads), add_special_(add_special_tokens), keep_(io.keeps_encodings()),
          out_(out), ok_(ok), locals_(threads > 1 ? threads : 0) {}

    // One thread: new words go straight into the shared cache (one lookup per word, nothing to merge).
    void alone() {
        {
            std::unique_lock<std::shared_mutex> writing(p_.cache.mutex);
            Worker me;
            encode({0, n_}, me);
        }  // released before the hand-over: never wait for the GIL holding a lock that a GIL holder may want
        pad_if_all();
        io_.take({{0, n_}});
    }

    // The caller and threads_ - 1 spawned workers.
    void together() {
        std::vector<std::thread> pool;
        {
            struct Joiner {  // joins the workers however the caller leaves (they use this object)
                std::vector<std::thread>& pool;
                ~Joiner() {
                    for (std::thread& t : pool) t.join();
                }
            } joiner{pool};
            try {
                for (int w = 1; w < threads_; ++w) pool.emplace_back([this, w] { work(w); });
            } catch (const std::system_error&) {  // no more threads to be had: the others do the work
            }
            call();
        }
        if (pool.empty()) merge();  // (no worker 1 to do it)
    }

  private:
    struct alignas(64) Local {  // a cache line of its own: no false sharing between the workers
        WordCache cache;         // the new words of one worker
    };

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
        for (size_t i = s.begin; i < s.end; ++i) {
            Enc& e = keep_ ? out_[i] : w.finished;
            ok_[i] = io_.read(i, w.in) && p_.encode(w.in, add_special_, false, e, w.ws);
            if (ok_[i] && !keep_) io_.finished(i, w.index, e);
        }
    }

    // A spawned worker: encodes until no input is left; then worker 1 merges the new words of every worker
    // into the shared cache (the exclusive lock waits for the others' last encode; no worker takes inputs
    // any more, so none writes to its cache after) while the caller hands over the last encodings.
    void work(int w) {
        {
            std::shared_lock<std::shared_mutex> reading(p_.cache.mutex);
            Worker me;
            me.index = w;
            me.ws.writes = &locals_[w].cache;
            for (Span s; take(s);) {
                encode(s, me);
                std::lock_guard<std::mutex> guard(mutex_);
                finished_.push_back(s);  // published by the mutex: out_ and ok_ of s are complete
                finished_cv_.notify_one();
            }
        }
        if (w == 1) merge();
    }

    void merge() {
        std::unique_lock<std::shared_mutex> writing(p_.cache.mutex);
        for (const Local& local : locals_) p_.cache.absorb(local.cache);
    }

    // The caller: encodes like the others and hands over every kHandOver finished inputs (its own and the
    // others'), so that making the Python objects overlaps the other workers' encoding. It holds the cache
    // lock only while it encodes: io_.take waits for the GIL, and a thread holding the GIL may wait for the
    // lock (a single encode).
    void call() {
        Worker me;
        me.ws.writes = &locals_[0].cache;
        const bool early = !p_.pad;  // batch padding needs every length first
        // (Whether inputs are left is read before taking the lock: once none are, worker 1 may hold it to
        // merge the caches, and the caller has better things to do than wait for that.)
        while (next_.load(std::memory_order_relaxed) < n_) {
            Span s;
            {
                std::shared_lock<std::shared_mutex> reading(p_.cache.mutex);
                if (!take(s)) break;
                encode(s, me);
            }
            add_ready(s);
            if (early && ready_count_ >= kHandOver) {
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

    void add_ready(Span s) {
        ready_.push_back(s);
        ready_count_ += s.end - s.begin;
    }

    // Moves the spans the other workers finished into ready_ (`wait`: at least one, waiting for it).
    void collect(bool wait) {
        std::unique_lock<std::mutex> lock(mutex_);
        if (wait) finished_cv_.wait(lock, [this] { return !finished_.empty(); });
        for (Span s : finished_) add_ready(s);
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
    std::vector<Local> locals_;    // by worker ([0]: the caller's)
    std::atomic<size_t> next_{0};  // the first input no worker has taken

    std::mutex mutex_;  // guards finished_
    std::condition_variable finished_cv_;
    std::vector<Span> finished_;  // by the spawned workers, not yet collected by the caller

    std::vector<Span> ready_;  // the caller's: finished, not yet handed over
    size_t ready_count_ = 0, handed_ = 0;
};

}  // namespace

void encode_batch(Pipeline& pipeline, BatchIO& io, size_t n, size_t chars, bool add_special_tokens, int threads,
                  std::vector<Enc>& out, std::vector<uint8_t>& ok) {
    out.clear();
    out.resize(n);  // (not assign(n, Enc{}): n copies of an empty encoding cost as much as its vectors)
    ok.assign(n, 0);
    if (chars < kMinChars) threads = 1;
    threads = std::max(1, std::min<int>(threads, static_cast<int>((n + kChunk - 1) / kChunk)));
    io.start(threads);
    Batch batch(pipeline, io, n, threads, add_special_tokens, out, ok);
    if (threads == 1)
        batch.alone();
    else
        batch.together();
}

}  // namespace llmlab
