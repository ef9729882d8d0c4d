#include "thread_pool.h"

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace rmsprop_ops {
namespace {

int default_threads() {
  if (const char *env = std::getenv("RMSPROP_OPS_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  const unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

class Pool {
 public:
  // Never destroyed: joining workers during interpreter shutdown or dlclose can deadlock, and the OS
  // reclaims the threads at exit anyway.
  void run(int nthreads, const std::function<void(int)> &fn) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock() || nthreads <= 1) {
      for (int t = 0; t < nthreads; ++t) fn(t);
      return;
    }
    grow(nthreads - 1);
    {
      std::lock_guard<std::mutex> lk(m_);
      job_ = &fn;
      job_threads_ = nthreads;
      pending_ = nthreads - 1;
      ++generation_;
    }
    cv_work_.notify_all();
    fn(0);
    std::unique_lock<std::mutex> lk(m_);
    cv_done_.wait(lk, [&] { return pending_ == 0; });
    job_ = nullptr;
  }

 private:
  void grow(int n) {
    while (static_cast<int>(workers_.size()) < n) {
      const int idx = static_cast<int>(workers_.size());
      workers_.emplace_back([this, idx] { loop(idx + 1); });
    }
  }

  void loop(int tid) {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lk(m_);
    for (;;) {
      cv_work_.wait(lk, [&] { return generation_ != seen; });
      seen = generation_;
      if (tid >= job_threads_) continue;
      const std::function<void(int)> *fn = job_;
      lk.unlock();
      (*fn)(tid);
      lk.lock();
      if (--pending_ == 0) cv_done_.notify_one();
    }
  }

  std::mutex busy_;
  std::mutex m_;
  std::condition_variable cv_work_, cv_done_;
  std::vector<std::thread> workers_;
  const std::function<void(int)> *job_ = nullptr;
  int job_threads_ = 0;
  int pending_ = 0;
  uint64_t generation_ = 0;
};

std::atomic<Pool *> g_pool{nullptr};
std::atomic<int> g_threads{0};
std::once_flag g_atfork_once;

// A forked child (DataLoader workers, multiprocessing) inherits the pool object but not its threads:
// it gets a fresh, empty pool. The old one is leaked on purpose; its mutexes may be held by threads that
// no longer exist in the child.
void reset_after_fork() { g_pool.store(new Pool()); }

Pool &pool() {
  std::call_once(g_atfork_once, [] { pthread_atfork(nullptr, nullptr, reset_after_fork); });
  Pool *p = g_pool.load();
  if (p == nullptr) {
    Pool *fresh = new Pool();
    if (g_pool.compare_exchange_strong(p, fresh)) return *fresh;
    delete fresh;
  }
  return *p;
}

}  // namespace

void set_num_threads(int n) { g_threads.store(n > 0 ? n : default_threads()); }

int get_num_threads() {
  int n = g_threads.load();
  if (n <= 0) {
    n = default_threads();
    g_threads.store(n);
  }
  return n;
}

void parallel_run(int nthreads, const std::function<void(int)> &fn) { pool().run(nthreads, fn); }

}  // namespace rmsprop_ops
