// The CPU kernel: the rule of rule.h over every set of a call, in one parallel region.
//
// The flat element space of all sets is cut into one contiguous range per thread (partition() in
// kernels.h). Every element is computed by the same scalar code whichever thread runs it, so results are
// bitwise identical for any thread count and equal to the per-tensor path.
#include <algorithm>
#include <string>
#include <vector>

#include "kernels.h"
#include "rmsprop_ops/rule.h"
#include "thread_pool.h"

namespace rmsprop_ops {
namespace {

// Below this many elements a call runs on the calling thread: waking the pool costs more than it saves.
constexpr int64_t kMinParallelElements = 1 << 15;
// Range boundaries fall on multiples of 64 elements, so no two threads write one cache line of an
// aligned fp16/fp32 buffer.
constexpr int64_t kAlign = 64;

template <bool CENTERED, bool MOMENTUM, bool MASTER, typename P>
void update_range(const SetPtrs<P> s, int64_t begin, int64_t end, const Coeffs<math_t<P>> c) {
  using M = math_t<P>;
  // Validation guarantees these buffers do not overlap; restrict lets the compiler vectorise.
  P *__restrict param = s.param;
  const P *__restrict grad = s.grad;
  M *__restrict ms = s.ms;
  M *__restrict mom = s.mom;
  M *__restrict mg = s.mg;
  M *__restrict master = s.master;
  const SetPtrs<P> r{param, grad, ms, mom, mg, master};
  for (int64_t i = begin; i < end; ++i) rmsprop_apply<CENTERED, MOMENTUM, MASTER, P>(r, i, c);
}

// Splits the flat element space of all sets into one contiguous range per thread and calls
// fn(set, begin, end) for each piece, in parallel. The only place the CPU work is partitioned: the
// kernel and the bandwidth probe both go through it.
template <typename Fn>
void for_each_range(const rmsprop_ops_tensor_set *sets, int64_t nsets, const Fn &fn) {
  std::vector<int64_t> offsets(static_cast<size_t>(nsets) + 1, 0);
  for (int64_t k = 0; k < nsets; ++k) offsets[k + 1] = offsets[k] + sets[k].param.numel;
  const int64_t total = offsets.back();
  if (total == 0) return;
  int nthreads = get_num_threads();
  const int64_t max_useful = std::max<int64_t>(1, total / kMinParallelElements);
  if (nthreads > max_useful) nthreads = static_cast<int>(max_useful);
  parallel_run(nthreads, [&](int tid) {
    int64_t lo, hi;
    partition(total, nthreads, tid, kAlign, &lo, &hi);
    if (lo >= hi) return;
    int64_t k = std::upper_bound(offsets.begin(), offsets.end(), lo) - offsets.begin() - 1;
    for (; k < nsets && offsets[k] < hi; ++k) {
      const int64_t b = std::max(lo, offsets[k]) - offsets[k];
      const int64_t e = std::min(hi, offsets[k + 1]) - offsets[k];
      if (b < e) fn(k, b, e);
    }
  });
}

template <typename P, bool CENTERED, bool MOMENTUM, bool MASTER>
void run_typed(const Launch &l) {
  using M = math_t<P>;
  const rmsprop_ops_hparams &hp = *l.hp;
  const double lr = load_scalar(hp.lr);
  const double rescale = load_scalar(hp.rescale_grad);
  std::vector<SetPtrs<P>> ptrs(static_cast<size_t>(l.nsets));
  std::vector<Coeffs<M>> coeffs(static_cast<size_t>(l.nsets));
  for (int64_t k = 0; k < l.nsets; ++k) {
    const rmsprop_ops_tensor_set &s = l.sets[k];
    ptrs[k] = SetPtrs<P>{static_cast<P *>(s.param.data), static_cast<const P *>(s.grad.data),
                         static_cast<M *>(s.mean_square.data), static_cast<M *>(s.moment.data),
                         static_cast<M *>(s.mean_grad.data), static_cast<M *>(s.master_param.data)};
    coeffs[k] = make_coeffs<M>(hp, lr * s.lr_mult, rescale, s.weight_decay, s.weight_decay_mode);
  }
  for_each_range(l.sets, l.nsets, [&](int64_t k, int64_t b, int64_t e) {
    update_range<CENTERED, MOMENTUM, MASTER, P>(ptrs[k], b, e, coeffs[k]);
  });
}

template <typename P>
void run_flags(const Launch &l) {
  // The 16-bit storage types are the only ones a master weight may accompany (validated in api.cpp).
  constexpr bool kMasterPossible = sizeof(P) == 2;
  const int key = (l.centered ? 4 : 0) | (l.momentum ? 2 : 0) | (l.master && kMasterPossible ? 1 : 0);
  switch (key) {
    case 0: run_typed<P, false, false, false>(l); break;
    case 1: run_typed<P, false, false, kMasterPossible>(l); break;
    case 2: run_typed<P, false, true, false>(l); break;
    case 3: run_typed<P, false, true, kMasterPossible>(l); break;
    case 4: run_typed<P, true, false, false>(l); break;
    case 5: run_typed<P, true, false, kMasterPossible>(l); break;
    case 6: run_typed<P, true, true, false>(l); break;
    default: run_typed<P, true, true, kMasterPossible>(l); break;
  }
}

[[noreturn]] void throw_not_implemented(const std::string &msg) { throw std::invalid_argument(msg); }

template <int NBUF>
void probe_range(const float *__restrict g, float *const *bufs, int64_t b, int64_t e) {
  float *__restrict x0 = bufs[0];
  float *__restrict x1 = bufs[1];
  float *__restrict x2 = bufs[NBUF > 2 ? 2 : 0];
  float *__restrict x3 = bufs[NBUF > 3 ? 3 : 0];
  for (int64_t i = b; i < e; ++i) {
    const float gi = g[i];
    x0[i] += gi;
    x1[i] += gi;
    if (NBUF > 2) x2[i] += gi;
    if (NBUF > 3) x3[i] += gi;
  }
}

}  // namespace

// Reads and read-modify-writes exactly the float32 buffers an update of these sets would (grad read;
// param, mean_square and, when present, moment and mean_grad updated) with one add each, through the
// same partition and threads: the memory roofline of an update, for the benchmarks.
void bandwidth_probe_cpu(const rmsprop_ops_tensor_set *sets, int64_t nsets) {
  for_each_range(sets, nsets, [&](int64_t k, int64_t b, int64_t e) {
    const rmsprop_ops_tensor_set &s = sets[k];
    float *bufs[4] = {static_cast<float *>(s.param.data), static_cast<float *>(s.mean_square.data), nullptr,
                      nullptr};
    int n = 2;
    if (s.moment.data != nullptr) bufs[n++] = static_cast<float *>(s.moment.data);
    if (s.mean_grad.data != nullptr) bufs[n++] = static_cast<float *>(s.mean_grad.data);
    const float *g = static_cast<const float *>(s.grad.data);
    if (n == 2) probe_range<2>(g, bufs, b, e);
    else if (n == 3) probe_range<3>(g, bufs, b, e);
    else probe_range<4>(g, bufs, b, e);
  });
}

void run_cpu(const Launch &l) {
  if (load_scalar(l.hp->skip_update) != 0.0) return;
  RMSPROP_OPS_DISPATCH_PARAM_DTYPE(l.param_dtype, P, throw_not_implemented, run_flags<P>(l));
}

}  // namespace rmsprop_ops
