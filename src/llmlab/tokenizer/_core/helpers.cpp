// Helper threads kept between batches; see helpers.h.
#include "helpers.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace llmlab {

namespace {

// A helper thread's mailbox: a job posted to it, and where it sleeps.
struct alignas(64) Slot {
    std::atomic<uint64_t> posted{0};  // one more for every job posted to it
    const std::function<void(int)>* job = nullptr;  // (written before `posted`)
    std::mutex mutex;
    std::condition_variable wake;
};

class Pool {
  public:
    // Posts `job` to threads 1 .. count (as many as can be had): how many run it.
    int start(int count, const std::function<void(int)>* job) {
        use_.lock();  // (until finish)
        while (static_cast<int>(slots_.size()) < count && add_thread()) {
        }
        const int running = std::min(count, static_cast<int>(slots_.size()));
        remaining_.store(running, std::memory_order_relaxed);
        for (int w = 0; w < running; ++w) {
            Slot& slot = *slots_[w];
            slot.job = job;
            {
                std::lock_guard<std::mutex> lock(slot.mutex);
                slot.posted.fetch_add(1, std::memory_order_release);
            }
            slot.wake.notify_one();
        }
        return running;
    }

    // Waits until every thread started has returned from the job.
    void finish() {
        auto all_done = [this] { return remaining_.load(std::memory_order_acquire) == 0; };
        if (!spin(all_done)) {
            std::unique_lock<std::mutex> lock(mutex_);
            done_.wait(lock, all_done);
        }
        use_.unlock();
    }

  private:
    bool add_thread() {
        slots_.push_back(std::make_unique<Slot>());
        try {
            std::thread(&Pool::serve, this, slots_.back().get(), static_cast<int>(slots_.size())).detach();
            return true;
        } catch (const std::system_error&) {  // no more threads to be had
            slots_.pop_back();
            return false;
        }
    }

    // Thread w, forever. A job is posted to it again only once it has left the last (`remaining_`), so it
    // never has more than one waiting.
    void serve(Slot* slot, int w) {
        uint64_t seen = 0;
        for (;;) {
            auto posted = [&] { return slot->posted.load(std::memory_order_acquire) != seen; };
            if (!spin(posted)) {
                std::unique_lock<std::mutex> lock(slot->mutex);
                slot->wake.wait(lock, posted);
            }
            ++seen;
            (*slot->job)(w);
            if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
                std::lock_guard<std::mutex> lock(mutex_);  // (a caller that stopped spinning sleeps on it)
                done_.notify_one();
            }
        }
    }

    std::mutex use_;  // held from start to finish: one job at a time
    std::vector<std::unique_ptr<Slot>> slots_;  // thread w's at w - 1
    std::atomic<int> remaining_{0};             // threads still in the job
    std::mutex mutex_;
    std::condition_variable done_;
};

Pool* pool = nullptr;  // never destroyed: its threads may outlive every static object
std::once_flag pool_made;

Pool& the_pool() {
    std::call_once(pool_made, [] {
        pool = new Pool;
        pthread_atfork(nullptr, nullptr, [] { pool = new Pool; });  // (the old one's threads are not here)
    });
    return *pool;
}

}  // namespace

Helpers::Helpers(int count, std::function<void(int)> job) : job_(std::move(job)) {
    if (count > 0) {
        the_pool().start(count, &job_);
        posted_ = true;
    }
}

Helpers::~Helpers() {
    if (posted_) the_pool().finish();
}

}  // namespace llmlab
