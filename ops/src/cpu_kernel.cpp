// The CPU kernel's driver: the rule of rule.h over every set of a call, in one parallel region.
//
// The flat element space of all sets is cut into chunks that the pool's threads claim as they become free
// (run_partitioned); each thread runs the loops of the instruction set chosen for this CPU (cpu_loops.cpp,
// one object per instruction set) over its chunks. Every element is computed by the same rule whichever thread
// and whichever instruction set runs it (IEEE sqrt and division, no contraction), so results are bitwise
// identical for any thread count, any instruction set, and equal to the per-tensor path.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "cpu_loops.h"
#include "kernels.h"
#include "rmsprop_ops/rule.h"
#include "rmsprop_ops/scratch.h"
#include "thread_pool.h"

namespace rmsprop_ops {
namespace {

// Below this many elements a call runs on the calling thread: waking the pool costs more than it saves.
constexpr int64_t kMinParallelElements = 1 << 15;
// Chunk boundaries fall on multiples of 64 elements, so no two threads write one cache line of an
// aligned fp16/fp32 buffer.
constexpr int64_t kAlign = 64;
// Chunks per thread: enough for a thread that falls behind to hand most of its share to the others, few
// enough that each chunk is a long stream for the hardware prefetchers.
constexpr int64_t kChunksPerThread = 8;

// ---- Choosing the loops ------------------------------------------------------------------------------

// Every instruction set this build has loops for, best first; `scalar` (the reference) always last.
const CpuLoops *const kAllLoops[] = {
#ifdef RMSPROP_OPS_LOOPS_AVX512
    &kLoopsAvx512,
#endif
#ifdef RMSPROP_OPS_LOOPS_AVX2
    &kLoopsAvx2,
#endif
#ifdef RMSPROP_OPS_LOOPS_SSE2
    &kLoopsSse2,
#endif
#ifdef RMSPROP_OPS_LOOPS_GENERIC
    &kLoopsGeneric,
#endif
    &kLoopsScalar,
};

bool cpu_runs(const CpuLoops *loops) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
#ifdef RMSPROP_OPS_LOOPS_AVX512
  // The flags the avx512 object is compiled with (cmake/cpu_loops.cmake); the check includes the OS's support
  // for the vector state.
  if (loops == &kLoopsAvx512)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c") &&
           __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
#endif
#ifdef RMSPROP_OPS_LOOPS_AVX2
  if (loops == &kLoopsAvx2)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c") &&
           __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
#endif
#endif
  (void)loops;
  return true;  // sse2 is part of x86-64; generic and scalar take the compiler's defaults
}

// The 512-bit loops run automatically on AMD CPUs only. From memory the update costs the same at either
// width; from cache (small models, large L3s) the 512-bit loops were faster on the AMD machine measured
// (docs/performance.md), and AMD cores run 512-bit instructions at full clock. On Intel cores, 512-bit
// instructions can lower the clock, and GCC and Clang choose 256-bit vectors themselves for every Intel
// AVX-512 core (-mprefer-vector-width=256 in their tuning): the avx2 loops run there.
bool auto_512() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_is("amd");
#else
  return false;
#endif
}

// The best loops this CPU runs (see auto_512), or those named by RMSPROP_OPS_CPU_ISA (for tests and
// benchmarks: "avx512", "avx2", "sse2", "generic", "scalar"; a set the CPU cannot run, or a name this build
// does not have, falls back to the automatic choice). Read once per process: the environment is not read
// again, so changing it later has no effect and no call races with it.
const CpuLoops *choose_loops() {
  if (const char *want = std::getenv("RMSPROP_OPS_CPU_ISA")) {
    for (const CpuLoops *l : kAllLoops)
      if (std::strcmp(want, l->name) == 0 && cpu_runs(l)) return l;
  }
  for (const CpuLoops *l : kAllLoops) {
#ifdef RMSPROP_OPS_LOOPS_AVX512
    if (l == &kLoopsAvx512 && !auto_512()) continue;
#endif
    if (cpu_runs(l)) return l;
  }
  return &kLoopsScalar;
}

const CpuLoops &loops() {
  static const CpuLoops *const chosen = choose_loops();
  return *chosen;
}

// The loops' software prefetch distance in bytes (cpu_loops.cpp): by default kPrefetchBytes, except on
// AMD CPUs, or RMSPROP_OPS_CPU_PREFETCH (read once; 0 turns it off), or what rmsprop_ops_cpu_set_prefetch
// set last (the benchmark's A/B rows). Four pages of state ahead: far enough that the page's first line
// arrives before the loop does, near enough to stay in L2. On the AMD machine measured the hardware
// prefetchers crossed pages well enough that the software prefetch helped some rules and cost others
// (docs/performance.md), so it is off there; elsewhere it guards against demand misses at every page.
constexpr int64_t kPrefetchBytes = 4 * 4096;
constexpr int64_t kMaxPrefetchBytes = 1 << 20;

int64_t clamp_prefetch(long long bytes) {
  return bytes < 0 ? 0 : (bytes > kMaxPrefetchBytes ? kMaxPrefetchBytes : static_cast<int64_t>(bytes));
}

int64_t default_prefetch() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_is("amd")) return 0;
#endif
  return kPrefetchBytes;
}

std::atomic<int64_t> &prefetch_setting() {
  static std::atomic<int64_t> bytes{[] {
    const char *env = std::getenv("RMSPROP_OPS_CPU_PREFETCH");
    return env != nullptr ? clamp_prefetch(std::atoll(env)) : default_prefetch();
  }()};
  return bytes;
}

// ---- Partition and threads ---------------------------------------------------------------------------

// Prefix sums of the sets' sizes: the flat element space the partition cuts.
const std::vector<int64_t> &flat_offsets(const rmsprop_ops_tensor_set *sets, int64_t nsets) {
  std::vector<int64_t> &offsets = scratch<int64_t, 0>(static_cast<size_t>(nsets) + 1);
  offsets[0] = 0;
  for (int64_t k = 0; k < nsets; ++k) offsets[k + 1] = offsets[k] + sets[k].param.numel;
  return offsets;
}

// Runs fn(job, lo, hi) over the flat element space in parallel: the only place the CPU work is split (the
// kernel and the bandwidth probe both go through it). The space is cut into chunks of at least
// kMinParallelElements, a few per thread, that the threads claim in order as they become free. A fixed
// half per thread made the whole call wait for the slowest thread: one woken late, or preempted by
// another runtime's threads sharing the cores (MindSpore's, whose graph runner keeps a core busy while our
// op runs), and the call took as long as on one thread. Every element's result depends only on its own
// inputs, never on which thread or chunk ran it, so results stay the same for any thread count.
void run_partitioned(const CpuJob &job, void (*fn)(const CpuJob &, int64_t, int64_t)) {
  const int64_t total = job.offsets[job.nsets];
  if (total == 0) return;
  int nthreads = get_num_threads();
  const int64_t max_useful = std::max<int64_t>(1, total / kMinParallelElements);
  if (nthreads > max_useful) nthreads = static_cast<int>(max_useful);
  if (nthreads <= 1) {
    fn(job, 0, total);
    return;
  }
  // Written so that nothing overflows for any total up to INT64_MAX.
  const int64_t per_thread = (total - 1) / (nthreads * kChunksPerThread) + 1;
  const int64_t chunk = (std::max(per_thread, kMinParallelElements) + kAlign - 1) / kAlign * kAlign;
  const int64_t nchunks = (total - 1) / chunk + 1;
  std::atomic<int64_t> next{0};
  parallel_run(nthreads, [&](int) {
    for (int64_t c = next.fetch_add(1, std::memory_order_relaxed); c < nchunks;
         c = next.fetch_add(1, std::memory_order_relaxed)) {
      const int64_t lo = c * chunk;
      fn(job, lo, lo + std::min(chunk, total - lo));
    }
  });
}

template <typename P>
void run_typed(const Launch &l) {
  using M = math_t<P>;
  const rmsprop_ops_hparams &hp = *l.hp;
  const double lr = load_scalar(hp.lr);
  const double rescale = load_scalar(hp.rescale_grad);
  std::vector<SetPtrs<P>> &ptrs = scratch<SetPtrs<P>, 0>(static_cast<size_t>(l.nsets));
  std::vector<Coeffs<M>> &coeffs = scratch<Coeffs<M>, 0>(static_cast<size_t>(l.nsets));
  for (int64_t k = 0; k < l.nsets; ++k) {
    const rmsprop_ops_tensor_set &s = l.sets[k];
    ptrs[k] = SetPtrs<P>{static_cast<P *>(s.param.data), static_cast<const P *>(s.grad.data),
                         static_cast<M *>(s.mean_square.data), static_cast<M *>(s.moment.data),
                         static_cast<M *>(s.mean_grad.data), static_cast<M *>(s.master_param.data)};
    coeffs[k] = make_coeffs<M>(hp, lr * s.lr_mult, rescale, s.weight_decay, s.weight_decay_mode);
  }
  const std::vector<int64_t> &offsets = flat_offsets(l.sets, l.nsets);
  const CpuJob job{l.param_dtype, l.centered, l.momentum, l.master, ptrs.data(), coeffs.data(), offsets.data(),
                   l.nsets, prefetch_setting().load(std::memory_order_relaxed)};
  run_partitioned(job, loops().update);
}

[[noreturn]] void throw_not_implemented(const std::string &msg) { throw std::invalid_argument(msg); }

}  // namespace

// Reads and read-modify-writes exactly the float32 buffers an update of these sets would (grad read;
// param, mean_square and, when present, moment and mean_grad updated) with one add each, through the
// same partition, threads and instruction set: the memory roofline of an update, for the benchmarks.
void bandwidth_probe_cpu(const rmsprop_ops_tensor_set *sets, int64_t nsets) {
  std::vector<SetPtrs<float>> &ptrs = scratch<SetPtrs<float>, 0>(static_cast<size_t>(nsets));
  for (int64_t k = 0; k < nsets; ++k) {
    const rmsprop_ops_tensor_set &s = sets[k];
    ptrs[k] = SetPtrs<float>{static_cast<float *>(s.param.data), static_cast<const float *>(s.grad.data),
                             static_cast<float *>(s.mean_square.data), static_cast<float *>(s.moment.data),
                             static_cast<float *>(s.mean_grad.data), nullptr};
  }
  const std::vector<int64_t> &offsets = flat_offsets(sets, nsets);
  // Optional buffers are present in every set or in none (validated).
  const bool has_mg = nsets > 0 && sets[0].mean_grad.data != nullptr;
  const bool has_mom = nsets > 0 && sets[0].moment.data != nullptr;
  const CpuJob job{RMSPROP_OPS_FLOAT32, has_mg, has_mom, false, ptrs.data(), nullptr, offsets.data(), nsets,
                   prefetch_setting().load(std::memory_order_relaxed)};
  run_partitioned(job, loops().probe);
}

void run_cpu(const Launch &l) {
  if (load_scalar(l.hp->skip_update) != 0.0) return;
  RMSPROP_OPS_DISPATCH_PARAM_DTYPE(l.param_dtype, P, throw_not_implemented, run_typed<P>(l));
}

const char *cpu_isa() { return loops().name; }

int64_t cpu_prefetch() { return prefetch_setting().load(std::memory_order_relaxed); }

void set_cpu_prefetch(int64_t bytes) { prefetch_setting().store(clamp_prefetch(bytes), std::memory_order_relaxed); }

}  // namespace rmsprop_ops

// Which loops this process runs (see choose_loops), the compiler that built them, and the loops' software
// prefetch distance: for the tests and the benchmarks, through ctypes (not part of c_api.h).
extern "C" RMSPROP_OPS_API const char *rmsprop_ops_cpu_isa(void) { return rmsprop_ops::cpu_isa(); }
extern "C" RMSPROP_OPS_API int64_t rmsprop_ops_cpu_prefetch(void) { return rmsprop_ops::cpu_prefetch(); }
extern "C" RMSPROP_OPS_API void rmsprop_ops_cpu_set_prefetch(int64_t bytes) { rmsprop_ops::set_cpu_prefetch(bytes); }
extern "C" RMSPROP_OPS_API const char *rmsprop_ops_cpu_compiler(void) {
#if defined(__clang__)
  return "clang " __clang_version__;
#elif defined(__GNUC__)
  return "gcc " __VERSION__;
#else
  return "unknown";
#endif
}
