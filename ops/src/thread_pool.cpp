#include "thread_pool.h"

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cctype>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "rmsprop_ops/c_api.h"

namespace rmsprop_ops {
namespace {

// The CPUs this process may run on (its affinity mask), at most RMSPROP_OPS_MAX_THREADS.
int cpu_threads() {
  int n = 0;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
  if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
  if (n <= 0) n = 1;
  return n < RMSPROP_OPS_MAX_THREADS ? n : RMSPROP_OPS_MAX_THREADS;
}

// $RMSPROP_OPS_NUM_THREADS read like set_num_threads reads its argument: a whole decimal integer in
// [1, RMSPROP_OPS_MAX_THREADS] (surrounding blanks allowed; unset or blank: the CPU count). A larger one is
// capped, anything else ("0", "-3", "abc", "1e9", "4.0") gives the CPU count; either way with a line on
// stderr that names the variable, what it holds and what is used. An environment variable cannot raise an
// error at the call that reads it (the first update, in any front end), and the library must not start a
// million threads or none because of one: it says so and carries on.
int env_threads() {
  const char *env = std::getenv("RMSPROP_OPS_NUM_THREADS");
  if (env == nullptr) return 0;
  const char *p = env;
  while (std::isspace(static_cast<unsigned char>(*p))) ++p;
  if (*p == '\0') return 0;
  const bool negative = *p == '-';
  if (*p == '+' || *p == '-') ++p;
  long long value = 0;
  bool digits = false, big = false;
  for (; std::isdigit(static_cast<unsigned char>(*p)); ++p) {
    digits = true;
    value = value * 10 + (*p - '0');
    if (value > RMSPROP_OPS_MAX_THREADS) {
      big = true;
      value = RMSPROP_OPS_MAX_THREADS;
    }
  }
  while (std::isspace(static_cast<unsigned char>(*p))) ++p;
  if (digits && *p == '\0' && !negative && (big || value >= 1)) {
    if (big)
      std::fprintf(stderr,
                   "rmsprop_ops: RMSPROP_OPS_NUM_THREADS=%s is above the maximum of %d threads; using %d\n",
                   env, RMSPROP_OPS_MAX_THREADS, RMSPROP_OPS_MAX_THREADS);
    return static_cast<int>(value);
  }
  const int n = cpu_threads();
  std::fprintf(stderr,
               "rmsprop_ops: RMSPROP_OPS_NUM_THREADS='%s' is not an integer in [1, %d]; using %d (the CPUs this "
               "process may run on)\n",
               env, RMSPROP_OPS_MAX_THREADS, n);
  return n;
}

// $RMSPROP_OPS_NUM_THREADS, else the CPU count; the environment is read once per process (so its message
// shows once, and a later change of the variable has no effect, as for the CPU loops' variables).
int default_threads() {
  static const int from_env = env_threads();
  return from_env > 0 ? from_env : cpu_threads();
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

void set_num_threads(int n) {
  g_threads.store(n > 0 ? (n < RMSPROP_OPS_MAX_THREADS ? n : RMSPROP_OPS_MAX_THREADS) : default_threads());
}

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
