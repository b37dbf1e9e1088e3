// Helper threads for batches, kept between them: starting a thread and having it run costs ~50-80 µs here,
// a batch of 1,000 lines ~500 µs on two threads.
//
// The threads live in one pool for the process, started as batches first ask for them and never stopped.
// Between jobs each spins for a short while (kSpin) before it sleeps: batches given one after another find
// their helpers awake. One job runs at a time (another caller waits for it). A child process forked from
// this one starts with an empty pool (fork copies no threads).
#pragma once

#include <chrono>
#include <functional>

namespace llmlab {

// How long an idle helper (or a thread waiting for another of its batch) watches before it sleeps: longer
// than the Python between batches of 1,000 lines, even where it frees the last batch's 1,000 Encodings
// (~300-600 us). Waking a sleeping thread took 50-100 us here (60-90 us a batch of encode_batch with 250 us).
inline constexpr auto kSpin = std::chrono::microseconds(1000);

inline void cpu_relax() {  // (a hint to the core that this is a wait loop)
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

// Spins until `done()` or kSpin has passed; true if done (else the caller sleeps until it is).
template <class Done>
bool spin(Done done) {
    const auto until = std::chrono::steady_clock::now() + kSpin;
    for (int i = 0;; ++i) {
        if (done()) return true;
        if (i % 64 == 63 && std::chrono::steady_clock::now() > until) return false;
        cpu_relax();
    }
}

// Runs job(1) .. job(count) on helper threads while the caller goes on (it is worker 0); the destructor
// returns once every started one has returned. Fewer may run when the system has no more threads to give.
// The job must not throw (an exception leaving a thread ends the process): it catches what it may throw.
class Helpers {
  public:
    Helpers(int count, std::function<void(int)> job);
    ~Helpers();
    Helpers(const Helpers&) = delete;
    Helpers& operator=(const Helpers&) = delete;

  private:
    std::function<void(int)> job_;
    bool posted_ = false;
};

}  // namespace llmlab
