// The CPU kernel's loops: the rule of rule.h over a range of the flat element space of a call's sets.
//
// This file is compiled once per instruction set with that set's flags (cmake/cpu_loops.cmake), defining
// RMSPROP_OPS_LOOPS_SYMBOL (the CpuLoops object to define) and RMSPROP_OPS_LOOPS_LABEL (its name); the
// driver in cpu_kernel.cpp picks one object at run time. Everything here has internal linkage and the
// rule's functions are always inlined: a function with vague linkage compiled with AVX-512 flags could be
// the copy the linker keeps for the other instruction sets' callers too.
#include <cmath>
#include <cstdint>

#include "cpu_loops.h"
#include "rmsprop_ops/rule.h"

#if !defined(RMSPROP_OPS_LOOPS_SYMBOL) || !defined(RMSPROP_OPS_LOOPS_LABEL)
#error "cpu_loops.cpp is compiled through cmake/cpu_loops.cmake, once per instruction set"
#endif

// The buffers of a set never overlap (validated), which the restrict pointers below say; this says it to
// the vectoriser too, which otherwise re-checks it at run time before every chunk.
#if defined(__clang__)
#define RMSPROP_OPS_NO_ALIAS _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define RMSPROP_OPS_NO_ALIAS _Pragma("GCC ivdep")
#else
#define RMSPROP_OPS_NO_ALIAS
#endif

namespace rmsprop_ops {
namespace {

// The loops resolve a set's choices before its element loop, so that each runs a body without the
// choices it does not make (most steps of most users make none: the body is the plain update).
//
// A set is "plain" when every option that only changes arithmetic is off or a plain gradient scale: no
// clipping, no weight decay. Its loop is compiled once per combination of the choices below, each fixed in
// a local copy of the coefficients, so that the compiler sees a constant and folds the option away:
//  - kRescaled: the gradient is scaled (rescale_grad != 1, or maximize: rescale -1); off, rescale is 1;
//  - kNesterov: Nesterov momentum (the rule's select on it disappears either way);
//  - kMgScaled: bias correction of the centered mean gradient (mg_scale != 1); off, mg_scale is 1.
// Other sets run the general loop, which evaluates every coefficient at run time. Results are bitwise the
// same in both: a folded option is an exact identity in the rule (x * 1, a clip at +inf, a skipped decay
// term, a select on a constant), and a kept one is the same operation on the same value. The reference
// loops (scalar, RMSPROP_OPS_LOOPS_REFERENCE) run the general loop for every set, so that the tests that
// compare every instruction set with them compare the folded variants with the rule as written.
#ifdef RMSPROP_OPS_LOOPS_REFERENCE
constexpr bool kVariants = false;
#else
constexpr bool kVariants = true;
#endif
enum Choice : unsigned { kRescaled = 1, kNesterov = 2, kMgScaled = 4 };

template <typename M>
bool is_plain(const Coeffs<M> &c) {
  const M inf = static_cast<M>(INFINITY);
  return c.clip_pre == inf && c.clip_post == inf && c.clip_w == inf && c.l2 == M(0) && c.l1 == M(0) &&
         c.decoupled == M(0);
}

template <typename M>
unsigned choices_of(const Coeffs<M> &c) {
  return (c.rescale != M(1) ? kRescaled : 0u) | (c.nesterov != M(0) ? kNesterov : 0u) |
         (c.mg_scale != M(1) ? kMgScaled : 0u);
}

// The coefficients a plain loop with choices F computes with: everything F and plainness fix is a constant.
template <unsigned F, typename M>
Coeffs<M> plain_coeffs(Coeffs<M> c) {
  const M inf = static_cast<M>(INFINITY);
  if (!(F & kRescaled)) c.rescale = M(1);
  if (!(F & kMgScaled)) c.mg_scale = M(1);
  c.nesterov = (F & kNesterov) ? M(1) : M(0);
  c.clip_pre = inf;
  c.clip_post = inf;
  c.clip_w = inf;
  c.l2 = M(0);
  c.l1 = M(0);
  c.decoupled = M(0);
  return c;
}

// ---- Walking a thread's range -------------------------------------------------------------------------

// A contiguous part [begin, end) of set k that one thread updates; set < 0: none.
struct Piece {
  int64_t set, begin, end;
};

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

// The first non-empty piece of [lo, hi) at or after set k (set -1 when there is none).
Piece piece_from(const CpuJob &job, int64_t k, int64_t lo, int64_t hi) {
  const int64_t *off = job.offsets;
  for (; k < job.nsets && off[k] < hi; ++k) {
    const int64_t b = (lo > off[k] ? lo : off[k]) - off[k];
    const int64_t e = (hi < off[k + 1] ? hi : off[k + 1]) - off[k];
    if (b < e) return Piece{k, b, e};
  }
  return Piece{-1, 0, 0};
}

// Calls fn(piece, next) for every non-empty piece of [lo, hi) in set order, next being the piece after
// it (set -1 for the last), so that a loop can prefetch across the boundary.
template <typename Fn>
void for_each_piece(const CpuJob &job, int64_t lo, int64_t hi, const Fn &fn) {
  Piece cur = piece_from(job, set_of(job.offsets, job.nsets, lo), lo, hi);
  while (cur.set >= 0) {
    const Piece next = piece_from(job, cur.set + 1, lo, hi);
    fn(cur, next);
    cur = next;
  }
}

// ---- Chunks and software prefetch ----------------------------------------------------------------------

// A piece is updated in chunks of one 4 KiB page of state (kChunk<M> elements), each a vectorised loop of
// constant length, then its remainder. With CpuJob::prefetch_bytes > 0, at the start of each chunk the
// loops prefetch one cache line of every buffer that many bytes (of state) ahead, into L2, following the
// piece into the next piece: the first line of a page each buffer will reach a few pages later. Hardware
// prefetchers stream within a 4 KiB page but may stop at its end; with buffers on 4 KiB pages (small
// tensors from the heap) every page of every buffer could then start with a demand miss and a page walk,
// which the prefetch starts early. One line per page, not every line: prefetching every line costs more
// than it hides. The driver chooses the distance (cpu_kernel.cpp, default_prefetch).
template <typename M>
constexpr int64_t kChunk = 4096 / static_cast<int64_t>(sizeof(M));

// Always inlined: GCC finds a function that only prefetches "pure" (a prefetch has no visible effect) and
// drops calls to it.
template <bool CENTERED, bool MOMENTUM, bool MASTER, typename P>
RMSPROP_HD void prefetch_at(const SetPtrs<P> &s, int64_t i) {
  __builtin_prefetch(s.param + i, 1, 2);
  __builtin_prefetch(s.grad + i, 0, 2);
  __builtin_prefetch(s.ms + i, 1, 2);
  if (MOMENTUM) __builtin_prefetch(s.mom + i, 1, 2);
  if (CENTERED) __builtin_prefetch(s.mg + i, 1, 2);
  if (MASTER) __builtin_prefetch(s.master + i, 1, 2);
}

// Prefetches element `ahead` of the current piece (which ends at `end`), or, past its end, the
// corresponding element of the next piece.
template <bool CENTERED, bool MOMENTUM, bool MASTER, typename P>
RMSPROP_HD void prefetch_ahead(const SetPtrs<P> &cur, int64_t end, const SetPtrs<P> *next, const Piece &np,
                               int64_t ahead) {
  if (ahead < end) {
    prefetch_at<CENTERED, MOMENTUM, MASTER>(cur, ahead);
  } else if (next != nullptr) {
    const int64_t j = np.begin + (ahead - end);
    if (j < np.end) prefetch_at<CENTERED, MOMENTUM, MASTER>(*next, j);
  }
}

// ---- The update ----------------------------------------------------------------------------------------

// PLAIN: a plain set (is_plain) whose choices are F; otherwise the general loop (F unused). Never inlined:
// with every variant inlined into its caller, the one function's register allocation spills the loops'
// pointers and coefficients to the stack, and each loop reloads them.
template <bool CENTERED, bool MOMENTUM, bool MASTER, bool PLAIN, unsigned F, typename P>
__attribute__((noinline)) void update_piece(const SetPtrs<P> &s, const Piece &piece, const Coeffs<math_t<P>> &given, const SetPtrs<P> *next,
                  const Piece &np, int64_t ahead) {
  using M = math_t<P>;
  // A local copy in which what the variant fixes is a constant the compiler sees.
  const Coeffs<M> c = PLAIN ? plain_coeffs<F>(given) : given;
  // Validation guarantees these buffers do not overlap; restrict lets the compiler vectorise.
  P *__restrict param = s.param;
  const P *__restrict grad = s.grad;
  M *__restrict ms = s.ms;
  M *__restrict mom = s.mom;
  M *__restrict mg = s.mg;
  M *__restrict master = s.master;
  const SetPtrs<P> r{param, grad, ms, mom, mg, master};
  constexpr int64_t kN = kChunk<M>;
  int64_t i = piece.begin;
  for (; i + kN <= piece.end; i += kN) {
    if (ahead > 0) prefetch_ahead<CENTERED, MOMENTUM, MASTER>(s, piece.end, next, np, i + ahead);
    RMSPROP_OPS_NO_ALIAS
    for (int64_t j = 0; j < kN; ++j) rmsprop_apply<CENTERED, MOMENTUM, MASTER, P>(r, i + j, c);
  }
  RMSPROP_OPS_NO_ALIAS
  for (; i < piece.end; ++i) rmsprop_apply<CENTERED, MOMENTUM, MASTER, P>(r, i, c);
}

template <typename P, bool CENTERED, bool MOMENTUM, bool MASTER>
void update_typed(const CpuJob &job, int64_t lo, int64_t hi) {
  using M = math_t<P>;
  // Choices that cannot matter under this rule are dropped, so that their variants are not compiled.
  constexpr unsigned kMatter = kRescaled | (MOMENTUM ? kNesterov : 0u) | (CENTERED ? kMgScaled : 0u);
  const SetPtrs<P> *ptrs = static_cast<const SetPtrs<P> *>(job.ptrs);
  const Coeffs<M> *coeffs = static_cast<const Coeffs<M> *>(job.coeffs);
  const int64_t ahead = job.prefetch_bytes / static_cast<int64_t>(sizeof(M));
  for_each_piece(job, lo, hi, [&](const Piece &p, const Piece &np) {
    const SetPtrs<P> &s = ptrs[p.set];
    const Coeffs<M> &c = coeffs[p.set];
    const SetPtrs<P> *next = np.set >= 0 ? &ptrs[np.set] : nullptr;
    if constexpr (kVariants) {
      if (is_plain(c)) {
        switch (choices_of(c) & kMatter) {
#define RMSPROP_OPS_PLAIN_CASE(F)                                                                     \
  case F: update_piece<CENTERED, MOMENTUM, MASTER, true, (F) & kMatter, P>(s, p, c, next, np, ahead); \
    return;
          RMSPROP_OPS_PLAIN_CASE(0)
          RMSPROP_OPS_PLAIN_CASE(1)
          RMSPROP_OPS_PLAIN_CASE(2)
          RMSPROP_OPS_PLAIN_CASE(3)
          RMSPROP_OPS_PLAIN_CASE(4)
          RMSPROP_OPS_PLAIN_CASE(5)
          RMSPROP_OPS_PLAIN_CASE(6)
          RMSPROP_OPS_PLAIN_CASE(7)
#undef RMSPROP_OPS_PLAIN_CASE
          default: break;  // every choice mask is a case
        }
      }
    }
    update_piece<CENTERED, MOMENTUM, MASTER, false, 0, P>(s, p, c, next, np, ahead);
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

// The probe: grad read, every other buffer read and written with one add, in the update's chunks.
template <bool CENTERED, bool MOMENTUM>
void probe_piece(const SetPtrs<float> &s, const Piece &piece, const SetPtrs<float> *next, const Piece &np,
                 int64_t ahead) {
  const float *__restrict g = s.grad;
  float *__restrict p = s.param;
  float *__restrict ms = s.ms;
  float *__restrict mom = s.mom;
  float *__restrict mg = s.mg;
  auto body = [&](int64_t j) __attribute__((always_inline)) {
    const float gj = g[j];
    p[j] += gj;
    ms[j] += gj;
    if (MOMENTUM) mom[j] += gj;
    if (CENTERED) mg[j] += gj;
  };
  constexpr int64_t kN = kChunk<float>;
  int64_t i = piece.begin;
  for (; i + kN <= piece.end; i += kN) {
    if (ahead > 0) prefetch_ahead<CENTERED, MOMENTUM, false>(s, piece.end, next, np, i + ahead);
    RMSPROP_OPS_NO_ALIAS
    for (int64_t j = 0; j < kN; ++j) body(i + j);
  }
  RMSPROP_OPS_NO_ALIAS
  for (; i < piece.end; ++i) body(i);
}

template <bool CENTERED, bool MOMENTUM>
void probe_typed(const CpuJob &job, int64_t lo, int64_t hi) {
  const SetPtrs<float> *ptrs = static_cast<const SetPtrs<float> *>(job.ptrs);
  const int64_t ahead = job.prefetch_bytes / static_cast<int64_t>(sizeof(float));
  for_each_piece(job, lo, hi, [&](const Piece &p, const Piece &np) {
    probe_piece<CENTERED, MOMENTUM>(ptrs[p.set], p, np.set >= 0 ? &ptrs[np.set] : nullptr, np, ahead);
  });
}

void probe(const CpuJob &job, int64_t lo, int64_t hi) {
  if (job.centered && job.momentum) probe_typed<true, true>(job, lo, hi);
  else if (job.centered) probe_typed<true, false>(job, lo, hi);
  else if (job.momentum) probe_typed<false, true>(job, lo, hi);
  else probe_typed<false, false>(job, lo, hi);
}

}  // namespace

extern const CpuLoops RMSPROP_OPS_LOOPS_SYMBOL = {RMSPROP_OPS_LOOPS_LABEL, &update, &probe};

}  // namespace rmsprop_ops
