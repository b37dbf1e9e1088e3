// Helper threads for batches, kept between them: starting a thread and having it run costs ~50-80 µs here,
// a batch of 1,000 lines ~500 µs on two threads.
//
// The threads live in one pool for the process, started as batches first ask for them and never stopped.
// Between jobs each spins for a short while (kSpin) before it sleeps: batches given one after another find
// their helpers awake. One job runs at a time (another caller waits for it). A child process forked from
// this one starts with an empty pool (fork copies no threads).
#pragma once

#include <functional>

namespace llmlab {

// Runs job(1) .. job(count) on helper threads while the caller goes on (it is worker 0); the destructor
// returns once every started one has returned. Fewer may run when the system has no more threads to give.
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
