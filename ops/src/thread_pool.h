// A small persistent thread pool for the CPU kernel. Work is split by a static partition, so which
// thread runs which range never changes the result.
#pragma once

#include <functional>

namespace rmsprop_ops {

void set_num_threads(int n);
int get_num_threads();

// Runs fn(tid) for tid in [0, nthreads) and returns when all are done. If another call is already using
// the pool (another Python thread with the GIL released), this one runs its ranges on the calling thread
// instead of waiting: results are the same, only the speed differs.
void parallel_run(int nthreads, const std::function<void(int)> &fn);

}  // namespace rmsprop_ops
