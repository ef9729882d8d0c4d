// The CPU kernel's loops: the rule of rule.h over a range of the flat element space of a call's sets.
//
// This file is compiled once per instruction set with that set's flags (CMakeLists.txt), defining
// RMSPROP_OPS_LOOPS_SYMBOL (the CpuLoops object to define) and RMSPROP_OPS_LOOPS_LABEL (its name); the
// driver in cpu_kernel.cpp picks one object at run time. Everything here has internal linkage and the
// rule's functions are always inlined: a function with vague linkage compiled with AVX-512 flags could be
// the copy the linker keeps for the other instruction sets' callers too.
#include <cmath>
#include <cstdint>

#include "cpu_loops.h"
#include "rmsprop_ops/rule.h"

#if !defined(RMSPROP_OPS_LOOPS_SYMBOL) || !defined(RMSPROP_OPS_LOOPS_LABEL)
#error "cpu_loops.cpp is compiled through CMakeLists.txt, once per instruction set"
#endif

namespace rmsprop_ops {
namespace {

// True when every option that only changes arithmetic is off for this set: no gradient rescaling, no
// clipping, no weight decay. Such sets (most steps of most users) run a loop in which those options are
// compile-time identities, so the vectorised body is the plain update. Results are bitwise the same as
// the general loop's: a disabled option is an exact identity in the rule (x * 1, a clip at +inf, a skipped
// decay term), which the compiler folds away here instead of evaluating.
template <typename M>
bool options_off(const Coeffs<M> &c) {
  const M inf = static_cast<M>(INFINITY);
  return c.rescale == M(1) && c.clip_pre == inf && c.clip_post == inf && c.clip_w == inf && c.l2 == M(0) &&
         c.l1 == M(0) && c.decoupled == M(0);
}

template <typename M>
Coeffs<M> with_options_off(Coeffs<M> c) {
  const M inf = static_cast<M>(INFINITY);
  c.rescale = M(1);
  c.clip_pre = inf;
  c.clip_post = inf;
  c.clip_w = inf;
  c.l2 = M(0);
  c.l1 = M(0);
  c.decoupled = M(0);
  return c;
}

template <bool CENTERED, bool MOMENTUM, bool MASTER, bool PLAIN, typename P>
void update_piece(const SetPtrs<P> &s, int64_t begin, int64_t end, const Coeffs<math_t<P>> &given) {
  using M = math_t<P>;
  // A local copy whose disabled options are constants the compiler sees.
  const Coeffs<M> c = PLAIN ? with_options_off(given) : given;
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

// The last set k with offsets[k] <= x: the set holding flat element x (an empty set shares its offset
// with the next one, which then wins).
int64_t set_of(const int64_t *offsets, int64_t nsets, int64_t x) {
  int64_t lo = 0, hi = nsets;
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (offsets[mid] <= x) lo = mid;
    else hi = mid;
  }
  return lo;
}

// Calls fn(k, begin, end) for every non-empty piece of [lo, hi) in set order, begin/end within set k.
template <typename Fn>
void for_each_piece(const CpuJob &job, int64_t lo, int64_t hi, const Fn &fn) {
  const int64_t *off = job.offsets;
  for (int64_t k = set_of(off, job.nsets, lo); k < job.nsets && off[k] < hi; ++k) {
    const int64_t b = (lo > off[k] ? lo : off[k]) - off[k];
    const int64_t e = (hi < off[k + 1] ? hi : off[k + 1]) - off[k];
    if (b < e) fn(k, b, e);
  }
}

template <typename P, bool CENTERED, bool MOMENTUM, bool MASTER>
void update_typed(const CpuJob &job, int64_t lo, int64_t hi) {
  using M = math_t<P>;
  const SetPtrs<P> *ptrs = static_cast<const SetPtrs<P> *>(job.ptrs);
  const Coeffs<M> *coeffs = static_cast<const Coeffs<M> *>(job.coeffs);
  for_each_piece(job, lo, hi, [&](int64_t k, int64_t b, int64_t e) {
    if (options_off(coeffs[k]))
      update_piece<CENTERED, MOMENTUM, MASTER, true, P>(ptrs[k], b, e, coeffs[k]);
    else
      update_piece<CENTERED, MOMENTUM, MASTER, false, P>(ptrs[k], b, e, coeffs[k]);
  });
}

template <typename P>
void update_flags(const CpuJob &job, int64_t lo, int64_t hi) {
  // The 16-bit storage types are the only ones a master weight may accompany (validated in api.cpp).
  constexpr bool kMasterPossible = sizeof(P) == 2;
  const int key = (job.centered ? 4 : 0) | (job.momentum ? 2 : 0) | (job.master && kMasterPossible ? 1 : 0);
  switch (key) {
    case 0: update_typed<P, false, false, false>(job, lo, hi); break;
    case 1: update_typed<P, false, false, kMasterPossible>(job, lo, hi); break;
    case 2: update_typed<P, false, true, false>(job, lo, hi); break;
    case 3: update_typed<P, false, true, kMasterPossible>(job, lo, hi); break;
    case 4: update_typed<P, true, false, false>(job, lo, hi); break;
    case 5: update_typed<P, true, false, kMasterPossible>(job, lo, hi); break;
    case 6: update_typed<P, true, true, false>(job, lo, hi); break;
    default: update_typed<P, true, true, kMasterPossible>(job, lo, hi); break;
  }
}

// The driver has checked the dtype (its dispatch names an unsupported one); this switch only selects.
void update(const CpuJob &job, int64_t lo, int64_t hi) {
  switch (job.param_dtype) {
    case RMSPROP_OPS_FLOAT32: update_flags<float>(job, lo, hi); break;
    case RMSPROP_OPS_FLOAT64: update_flags<double>(job, lo, hi); break;
    case RMSPROP_OPS_FLOAT16: update_flags<half_t>(job, lo, hi); break;
    case RMSPROP_OPS_BFLOAT16: update_flags<bfloat16_t>(job, lo, hi); break;
    default: break;
  }
}

template <int NBUF>
void probe_piece(const float *__restrict g, float *const *bufs, int64_t b, int64_t e) {
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

void probe(const CpuJob &job, int64_t lo, int64_t hi) {
  const SetPtrs<float> *ptrs = static_cast<const SetPtrs<float> *>(job.ptrs);
  for_each_piece(job, lo, hi, [&](int64_t k, int64_t b, int64_t e) {
    const SetPtrs<float> &s = ptrs[k];
    float *bufs[4] = {s.param, s.ms, nullptr, nullptr};
    int n = 2;
    if (job.momentum) bufs[n++] = s.mom;
    if (job.centered) bufs[n++] = s.mg;
    if (n == 2) probe_piece<2>(s.grad, bufs, b, e);
    else if (n == 3) probe_piece<3>(s.grad, bufs, b, e);
    else probe_piece<4>(s.grad, bufs, b, e);
  });
}

}  // namespace

extern const CpuLoops RMSPROP_OPS_LOOPS_SYMBOL = {RMSPROP_OPS_LOOPS_LABEL, &update, &probe};

}  // namespace rmsprop_ops
