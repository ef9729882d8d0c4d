// The CUDA rows kernel (rows_api.h). On the call's stream:
//
//   1. check every index (in range) and the counter of every row it names (in [0, step]) on the device,
//      and read the verdict back (the call's one host synchronisation): a bad index or counter raises
//      before anything is written;
//   2. merge: a stable radix sort of (row, position) pairs (CUB), then the runs of equal rows;
//   3. one block per distinct row (EXACT, LAZY), threads over its columns: the row's values summed in the
//      order they appear, the row caught up (catch_up.h), then the rule (rule.h); or, DENSE, one thread
//      per element of the table, absent rows with a zero gradient;
//   4. the step counter incremented by one thread, after the update.
//
// The skip flag and the step counter are read on the device, so a skipped step leaves everything, the
// counters included, as it was. Same arithmetic as rows_cpu.cpp (same order of the row sums, the
// catch-up factors by repeated squaring rather than pow, --fmad=false): the same bits.
#include <cuda_runtime.h>

#include <climits>
#include <cub/cub.cuh>
#include <string>

#include "cuda_device.h"
#include "kernels.h"
#include "registry.h"
#include "rmsprop_ops/catch_up.h"
#include "rmsprop_ops/rule.h"
#include "rows.h"

namespace rmsprop_ops {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxGrid = 1 << 16;

void check(cudaError_t e, const char *what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("rmsprop_ops CUDA error in ") + what + ": " + cudaGetErrorString(e));
}

int grid_for(int64_t items, int threads) {
  const int64_t blocks = (items + threads - 1) / threads;
  return static_cast<int>(blocks < 1 ? 1 : (blocks > kMaxGrid ? kMaxGrid : blocks));
}

// Threads per row block: a warp multiple covering the row, at most kThreads.
int row_threads(int64_t width) {
  int64_t t = 32;
  while (t < width && t < kThreads) t *= 2;
  return static_cast<int>(t);
}

// Scratch memory of one call, stream-ordered, freed when the call ends (also on an exception).
class Scratch {
 public:
  explicit Scratch(cudaStream_t s) : stream_(s) {}
  ~Scratch() {
    for (int i = 0; i < n_; ++i) cudaFreeAsync(ptrs_[i], stream_);
  }
  Scratch(const Scratch &) = delete;
  Scratch &operator=(const Scratch &) = delete;
  template <typename T>
  T *get(int64_t count) {
    if (n_ == kMax) throw std::runtime_error("rmsprop_ops: rows scratch exhausted");
    void *p = nullptr;
    const size_t bytes = static_cast<size_t>(count < 1 ? 1 : count) * sizeof(T);
    check(cudaMallocAsync(&p, bytes, stream_), "cudaMallocAsync");
    ptrs_[n_++] = p;
    return static_cast<T *>(p);
  }

 private:
  static constexpr int kMax = 16;
  cudaStream_t stream_;
  void *ptrs_[kMax] = {};
  int n_ = 0;
};

// ---- 1. validation on the device
struct Verdict {
  unsigned long long bad_index;    // first position holding an out-of-range index (ULLONG_MAX: none)
  unsigned long long bad_counter;  // smallest row whose counter is outside [0, step] (ULLONG_MAX: none)
};

template <typename Idx>
__global__ void check_indices(const Idx *idx, int64_t n, int64_t nrows, const int64_t *last, const int64_t *step,
                              Verdict *v) {
  const int64_t t = step != nullptr ? *step : 0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = static_cast<int64_t>(idx[i]);
    if (row < 0 || row >= nrows) {
      atomicMin(&v->bad_index, static_cast<unsigned long long>(i));
    } else if (last != nullptr && (last[row] < 0 || last[row] > t)) {
      atomicMin(&v->bad_counter, static_cast<unsigned long long>(row));
    }
  }
}

__global__ void check_counters(int64_t nrows, const int64_t *last, const int64_t *step, Verdict *v) {
  const int64_t t = *step;
  for (int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; r < nrows;
       r += static_cast<int64_t>(gridDim.x) * blockDim.x)
    if (last[r] < 0 || last[r] > t) atomicMin(&v->bad_counter, static_cast<unsigned long long>(r));
}

template <typename T>
T read_back(const T *dev, cudaStream_t stream) {
  T host{};
  check(cudaMemcpyAsync(&host, dev, sizeof(T), cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync");
  check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  return host;
}

// Raises ArgError, with the offending value in the message, when the indices or counters are bad.
void validate_on_device(const RowsLaunch &l, cudaStream_t stream, Scratch &scratch) {
  const rmsprop_ops_rows &r = *l.r;
  const bool counted = r.mode != RMSPROP_OPS_ROWS_DENSE;
  const int64_t *last = counted ? static_cast<const int64_t *>(r.last_step.data) : nullptr;
  const int64_t *step = counted ? static_cast<const int64_t *>(r.step.data) : nullptr;
  Verdict *v = scratch.get<Verdict>(1);
  check(cudaMemsetAsync(v, 0xff, sizeof(Verdict), stream), "cudaMemsetAsync");
  if (l.n > 0) {
    if (l.index_dtype == RMSPROP_OPS_INT32)
      check_indices<<<grid_for(l.n, kThreads), kThreads, 0, stream>>>(static_cast<const int32_t *>(r.indices.data),
                                                                       l.n, l.nrows, last, step, v);
    else
      check_indices<<<grid_for(l.n, kThreads), kThreads, 0, stream>>>(static_cast<const int64_t *>(r.indices.data),
                                                                       l.n, l.nrows, last, step, v);
    check(cudaGetLastError(), "check_indices launch");
  } else if (l.catch_up) {
    check_counters<<<grid_for(l.nrows, kThreads), kThreads, 0, stream>>>(l.nrows, last, step, v);
    check(cudaGetLastError(), "check_counters launch");
  }
  const Verdict h = read_back(v, stream);
  const int64_t t = step != nullptr ? read_back(step, stream) : 0;
  if (t < 0) throw ArgError{RMSPROP_OPS_VALUE_ERROR, "step: expected a count >= 0, got " + std::to_string(t)};
  if (h.bad_index != ULLONG_MAX) {
    const int64_t i = static_cast<int64_t>(h.bad_index);
    const int64_t row = l.index_dtype == RMSPROP_OPS_INT32
                            ? read_back(static_cast<const int32_t *>(r.indices.data) + i, stream)
                            : read_back(static_cast<const int64_t *>(r.indices.data) + i, stream);
    throw ArgError{RMSPROP_OPS_VALUE_ERROR, "indices[" + std::to_string(i) + "]: expected a row in [0, " +
                                                std::to_string(l.nrows) + "), got " + std::to_string(row)};
  }
  if (h.bad_counter != ULLONG_MAX) {
    const int64_t row = static_cast<int64_t>(h.bad_counter);
    throw ArgError{RMSPROP_OPS_VALUE_ERROR, "last_step[" + std::to_string(row) + "]: expected a count in [0, step=" +
                                                std::to_string(t) + "], got " + std::to_string(read_back(last + row, stream))};
  }
}

// ---- 2. merge
struct Runs {
  const int64_t *row;    // distinct rows, ascending
  const int64_t *start;  // run j: sorted positions [start[j], start[j + 1])
  const int64_t *pos;    // sorted position -> position in the gradient
  const int64_t *count;  // number of runs (device)
};

template <typename Idx>
__global__ void to_keys(const Idx *idx, int64_t n, int64_t *key, int64_t *pos) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    key[i] = static_cast<int64_t>(idx[i]);
    pos[i] = i;
  }
}

__global__ void mark_heads(const int64_t *key, int64_t n, int64_t *head) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    head[i] = i == 0 || key[i] != key[i - 1] ? 1 : 0;
}

__global__ void fill_runs(const int64_t *key, const int64_t *head, const int64_t *run_id, int64_t n, int64_t *row,
                          int64_t *start, int64_t *count) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if (head[i]) {
      row[run_id[i]] = key[i];
      start[run_id[i]] = i;
    }
    if (i == n - 1) {
      const int64_t runs = run_id[i] + head[i];
      *count = runs;
      start[runs] = n;
    }
  }
}

template <typename Idx>
Runs merge(const Idx *idx, int64_t n, int64_t nrows, cudaStream_t stream, Scratch &scratch) {
  int64_t *key = scratch.get<int64_t>(n), *pos = scratch.get<int64_t>(n);
  int64_t *key_sorted = scratch.get<int64_t>(n), *pos_sorted = scratch.get<int64_t>(n);
  int64_t *head = scratch.get<int64_t>(n), *run_id = scratch.get<int64_t>(n);
  int64_t *row = scratch.get<int64_t>(n), *start = scratch.get<int64_t>(n + 1), *count = scratch.get<int64_t>(1);
  to_keys<<<grid_for(n, kThreads), kThreads, 0, stream>>>(idx, n, key, pos);
  check(cudaGetLastError(), "to_keys launch");
  int bits = 1;  // at least one: a sort over no bits is not a case CUB documents
  while (bits < 63 && (int64_t{1} << bits) < nrows) ++bits;
  size_t sort_bytes = 0, scan_bytes = 0;
  check(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, key, key_sorted, pos, pos_sorted, n, 0, bits, stream),
        "SortPairs (size)");
  check(cub::DeviceScan::ExclusiveSum(nullptr, scan_bytes, head, run_id, n, stream), "ExclusiveSum (size)");
  void *temp = scratch.get<char>(static_cast<int64_t>(sort_bytes > scan_bytes ? sort_bytes : scan_bytes));
  check(cub::DeviceRadixSort::SortPairs(temp, sort_bytes, key, key_sorted, pos, pos_sorted, n, 0, bits, stream),
        "SortPairs");
  mark_heads<<<grid_for(n, kThreads), kThreads, 0, stream>>>(key_sorted, n, head);
  check(cudaGetLastError(), "mark_heads launch");
  check(cub::DeviceScan::ExclusiveSum(temp, scan_bytes, head, run_id, n, stream), "ExclusiveSum");
  fill_runs<<<grid_for(n, kThreads), kThreads, 0, stream>>>(key_sorted, head, run_id, n, row, start, count);
  check(cudaGetLastError(), "fill_runs launch");
  return Runs{row, start, pos_sorted, count};
}

// ---- 3. the update

struct Scalars {
  rmsprop_ops_hparams hp;
  double lr_mult, weight_decay;
  int32_t weight_decay_mode;
};

template <typename M>
__device__ Coeffs<M> coeffs_of(const Scalars &a) {
  return make_coeffs<M>(a.hp, load_scalar(a.hp.lr) * a.lr_mult, load_scalar(a.hp.rescale_grad), a.weight_decay,
                        a.weight_decay_mode);
}

// Run j's gradient at column col: its values summed in the order they appear.
template <typename P>
__device__ math_t<P> run_grad(const Table<P> &s, const Runs &u, int64_t j, int64_t col) {
  using M = math_t<P>;
  int64_t q = u.start[j];
  M g = to_math<M>(s.values[u.pos[q] * s.width + col]);
  for (++q; q < u.start[j + 1]; ++q) g = g + to_math<M>(s.values[u.pos[q] * s.width + col]);
  return g;
}

template <bool CENTERED, bool MOMENT, bool MASTER, bool MOVE, bool STEP, typename P>
__device__ void row_element(const Table<P> &s, int64_t i, math_t<P> g, const Coeffs<math_t<P>> &c, const CatchUp &u) {
  using M = math_t<P>;
  M p = MASTER ? s.master[i] : to_math<M>(s.param[i]);
  M ms = s.ms[i];
  M mg = CENTERED ? s.mg[i] : M(0);
  M mom = MOMENT ? s.mom[i] : M(0);
  if (u.k > 0) catch_up_element<CENTERED, MOMENT, MOVE, M>(p, ms, mg, mom, u);
  if (STEP) rmsprop_element<CENTERED, MOMENT, M>(p, g, ms, mg, mom, c);
  s.ms[i] = ms;
  if (CENTERED) s.mg[i] = mg;
  if (MOMENT) s.mom[i] = mom;
  if (STEP || (MOVE && MOMENT)) {
    if (MASTER) s.master[i] = p;
    s.param[i] = from_math<P>(p);
  }
}

// EXACT / LAZY: one block per run (grid-stride), threads over the row's columns.
template <typename P, bool CENTERED, bool MOMENT, bool MASTER, bool MOVE>
__global__ void touch_rows(const Table<P> s, const Runs u, const int64_t *step, const Scalars a) {
  using M = math_t<P>;
  if (load_scalar(a.hp.skip_update) != 0.0) return;
  const int64_t t = *step;
  const int64_t runs = *u.count;
  const Coeffs<M> c = coeffs_of<M>(a);
  for (int64_t j = blockIdx.x; j < runs; j += gridDim.x) {
    const int64_t row = u.row[j];
    const CatchUp up = make_catch_up(t - s.last[row], c);
    for (int64_t col = threadIdx.x; col < s.width; col += blockDim.x)
      row_element<CENTERED, MOMENT, MASTER, MOVE, true, P>(s, row * s.width + col, run_grad(s, u, j, col), c, up);
    __syncthreads();  // every thread has read last[row]
    if (threadIdx.x == 0) s.last[row] = t + 1;
  }
}

// Catch-up: rows of the runs (u.row given) or every row, to step t; counters set to t.
template <typename P, bool CENTERED, bool MOMENT, bool MASTER, bool MOVE>
__global__ void catch_up_rows(const Table<P> s, const Runs u, int64_t nrows, const int64_t *step, const Scalars a) {
  using M = math_t<P>;
  const int64_t t = *step;
  const int64_t count = u.row != nullptr ? *u.count : nrows;
  const Coeffs<M> c = coeffs_of<M>(a);
  for (int64_t j = blockIdx.x; j < count; j += gridDim.x) {
    const int64_t row = u.row != nullptr ? u.row[j] : j;
    const CatchUp up = make_catch_up(t - s.last[row], c);
    if (up.k > 0)
      for (int64_t col = threadIdx.x; col < s.width; col += blockDim.x)
        row_element<CENTERED, MOMENT, MASTER, MOVE, false, P>(s, row * s.width + col, M(0), c, up);
    __syncthreads();
    if (threadIdx.x == 0) s.last[row] = t;
  }
}

// DENSE: the row -> run map, then every element of the table.
__global__ void map_runs(const Runs u, int64_t *slot) {
  const int64_t runs = *u.count;
  for (int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; j < runs;
       j += static_cast<int64_t>(gridDim.x) * blockDim.x)
    slot[u.row[j]] = j;
}

template <typename P, bool CENTERED, bool MOMENT, bool MASTER>
__global__ void dense_rows(const Table<P> s, const Runs u, const int64_t *slot, int64_t numel, const Scalars a) {
  using M = math_t<P>;
  if (load_scalar(a.hp.skip_update) != 0.0) return;
  const Coeffs<M> c = coeffs_of<M>(a);
  const CatchUp none{0, 1.0, 1.0, 0.0};
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < numel;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = i / s.width;
    const int64_t j = slot != nullptr ? slot[row] : -1;
    const M g = j >= 0 ? run_grad(s, u, j, i - row * s.width) : M(0);
    row_element<CENTERED, MOMENT, MASTER, false, true, P>(s, i, g, c, none);
  }
}

// ---- 4. the step counter
__global__ void count_step(int64_t *step, const rmsprop_ops_scalar skip) {
  if (load_scalar(skip) == 0.0) *step = *step + 1;
}

template <typename P, bool CENTERED, bool MOMENT, bool MASTER, bool MOVE>
void launch(const RowsLaunch &l, const Table<P> &s, const Runs &u, const int64_t *slot, const Scalars &a,
            cudaStream_t stream) {
  const rmsprop_ops_rows &r = *l.r;
  int64_t *step = static_cast<int64_t *>(r.step.data);
  const int rt = row_threads(l.width);
  if (l.catch_up) {
    const int64_t count = u.row != nullptr ? l.n : l.nrows;  // l.n bounds the runs
    if (count > 0) {
      catch_up_rows<P, CENTERED, MOMENT, MASTER, MOVE>
          <<<static_cast<int>(count < kMaxGrid ? count : kMaxGrid), rt, 0, stream>>>(s, u, l.nrows, step, a);
      check(cudaGetLastError(), "catch_up_rows launch");
    }
    return;
  }
  if (r.mode == RMSPROP_OPS_ROWS_DENSE) {
    const int64_t numel = l.nrows * l.width;
    if (numel > 0) {
      dense_rows<P, CENTERED, MOMENT, MASTER><<<grid_for(numel, kThreads), kThreads, 0, stream>>>(s, u, slot, numel, a);
      check(cudaGetLastError(), "dense_rows launch");
    }
  } else if (l.n > 0) {
    touch_rows<P, CENTERED, MOMENT, MASTER, MOVE>
        <<<static_cast<int>(l.n < kMaxGrid ? l.n : kMaxGrid), rt, 0, stream>>>(s, u, step, a);
    check(cudaGetLastError(), "touch_rows launch");
  }
  if (step != nullptr) {
    count_step<<<1, 1, 0, stream>>>(step, a.hp.skip_update);
    check(cudaGetLastError(), "count_step launch");
  }
}

template <typename P>
void run_typed(const RowsLaunch &l, cudaStream_t stream, Scratch &scratch) {
  using M = math_t<P>;
  const rmsprop_ops_rows &r = *l.r;
  const Table<P> s = table<P>(l);
  Runs u{nullptr, nullptr, nullptr, nullptr};
  if (l.n > 0)
    u = l.index_dtype == RMSPROP_OPS_INT32 ? merge(static_cast<const int32_t *>(r.indices.data), l.n, l.nrows, stream, scratch)
                                           : merge(static_cast<const int64_t *>(r.indices.data), l.n, l.nrows, stream, scratch);
  int64_t *slot = nullptr;
  if (!l.catch_up && r.mode == RMSPROP_OPS_ROWS_DENSE && l.n > 0) {
    slot = scratch.get<int64_t>(l.nrows);
    check(cudaMemsetAsync(slot, 0xff, static_cast<size_t>(l.nrows) * sizeof(int64_t), stream), "cudaMemsetAsync");
    map_runs<<<grid_for(l.n, kThreads), kThreads, 0, stream>>>(u, slot);
    check(cudaGetLastError(), "map_runs launch");
  }
  const Scalars a{*l.hp, r.lr_mult, r.weight_decay, r.weight_decay_mode};
  constexpr bool kMasterPossible = sizeof(P) == 2;
  with_row_flags(l.centered, l.moment, l.master, r.mode == RMSPROP_OPS_ROWS_LAZY, [&](auto c, auto m, auto ma, auto mv) {
    launch<P, decltype(c)::value, decltype(m)::value, decltype(ma)::value && kMasterPossible, decltype(mv)::value>(
        l, s, u, slot, a, stream);
  });
}

[[noreturn]] void throw_not_implemented(const std::string &msg) { throw std::invalid_argument(msg); }

}  // namespace

void run_rows_cuda(const RowsLaunch &l, void *stream_ptr) {
  DeviceGuard guard(l.r->param.data);
  const cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  Scratch scratch(stream);
  validate_on_device(l, stream, scratch);
  RMSPROP_OPS_DISPATCH_PARAM_DTYPE(l.param_dtype, P, throw_not_implemented, run_typed<P>(l, stream, scratch));
}

}  // namespace rmsprop_ops
