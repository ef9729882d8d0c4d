// The CPU rows kernel (rows_api.h). The gradient's indices are merged by a stable radix sort, so each
// row's values are summed in the order they appear (Paddle's MergeAdd order); the rows are then cut into
// one contiguous range per thread (partition() in kernels.h) and each element is computed by the same
// scalar code, whichever thread runs it: results do not depend on the thread count.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "kernels.h"
#include "rmsprop_ops/catch_up.h"
#include "rmsprop_ops/rule.h"
#include "rows.h"
#include "thread_pool.h"

namespace rmsprop_ops {
namespace {

// Below this many elements a call runs on the calling thread (as in cpu_kernel.cpp).
constexpr int64_t kMinParallelElements = 1 << 15;

// A gradient's rows merged: the distinct rows ascending; the values of row[j] are rows pos[start[j]],
// ..., pos[start[j + 1] - 1] of `values`, in the order they appear.
struct MergedRows {
  std::vector<int64_t> row, start, pos;
};

// LSD radix sort on the row (11-bit digits, only as many as the table's row count needs): linear in the
// number of indices and stable, so repeats keep their order.
template <typename Idx>
MergedRows merge_rows(const Idx *idx, int64_t n, int64_t nrows) {
  std::vector<int64_t> key(static_cast<size_t>(n)), pos(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    key[i] = static_cast<int64_t>(idx[i]);
    pos[i] = i;
  }
  int bits = 0;
  while (bits < 63 && (int64_t{1} << bits) < nrows) ++bits;
  constexpr int kDigit = 11;
  constexpr int64_t kMask = (int64_t{1} << kDigit) - 1;
  if (n > 1 && bits > 0) {
    std::vector<int64_t> key2(key.size()), pos2(pos.size()), count(size_t{1} << kDigit);
    for (int shift = 0; shift < bits; shift += kDigit) {
      std::fill(count.begin(), count.end(), 0);
      for (int64_t i = 0; i < n; ++i) ++count[(key[i] >> shift) & kMask];
      int64_t sum = 0;
      for (int64_t &c : count) {
        const int64_t here = c;
        c = sum;
        sum += here;
      }
      for (int64_t i = 0; i < n; ++i) {
        const int64_t dst = count[(key[i] >> shift) & kMask]++;
        key2[dst] = key[i];
        pos2[dst] = pos[i];
      }
      key.swap(key2);
      pos.swap(pos2);
    }
  }
  MergedRows m;
  m.pos = std::move(pos);
  for (int64_t i = 0; i < n; ++i) {
    if (i == 0 || key[i] != key[i - 1]) {
      m.row.push_back(key[i]);
      m.start.push_back(i);
    }
  }
  m.start.push_back(n);
  return m;
}

MergedRows merged_indices(const RowsLaunch &l) {
  const void *ix = l.r->indices.data;
  if (l.index_dtype == RMSPROP_OPS_INT32) return merge_rows(static_cast<const int32_t *>(ix), l.n, l.nrows);
  return merge_rows(static_cast<const int64_t *>(ix), l.n, l.nrows);
}


// Runs fn(begin, end) over [0, count) items of `per_item` elements each, one contiguous range per thread.
template <typename Fn>
void for_each_range(int64_t count, int64_t per_item, const Fn &fn) {
  if (count <= 0) return;
  int nthreads = get_num_threads();
  const int64_t max_useful = std::max<int64_t>(1, count * std::max<int64_t>(per_item, 1) / kMinParallelElements);
  if (nthreads > max_useful) nthreads = static_cast<int>(max_useful);
  parallel_run(nthreads, [&](int tid) {
    int64_t lo, hi;
    partition(count, nthreads, tid, 1, &lo, &hi);
    if (lo < hi) fn(lo, hi);
  });
}

// Elements [b, e) of the table take one step with gradient g[j - b] (g null: a zero gradient), after
// catching up u.k skipped steps when CATCH. The loop body is rmsprop_apply's with the gradient given.
template <bool CENTERED, bool MOMENT, bool MASTER, bool MOVE, bool CATCH, typename P>
void step_elements(const Table<P> &s, int64_t b, int64_t e, const math_t<P> *g, const Coeffs<math_t<P>> &c,
                   const CatchUp &u) {
  using M = math_t<P>;
  P *__restrict param = s.param;
  M *__restrict ms = s.ms;
  M *__restrict mom = s.mom;
  M *__restrict mg = s.mg;
  M *__restrict master = s.master;
  for (int64_t i = b; i < e; ++i) {
    M p = MASTER ? master[i] : to_math<M>(param[i]);
    M ms_i = ms[i];
    M mg_i = CENTERED ? mg[i] : M(0);
    M mom_i = MOMENT ? mom[i] : M(0);
    if (CATCH) catch_up_element<CENTERED, MOMENT, MOVE, M>(p, ms_i, mg_i, mom_i, u);
    rmsprop_element<CENTERED, MOMENT, M>(p, g != nullptr ? g[i - b] : M(0), ms_i, mg_i, mom_i, c);
    ms[i] = ms_i;
    if (CENTERED) mg[i] = mg_i;
    if (MOMENT) mom[i] = mom_i;
    if (MASTER) master[i] = p;
    param[i] = from_math<P>(p);
  }
}

// Elements [b, e) caught up by u (no gradient step).
template <bool CENTERED, bool MOMENT, bool MASTER, bool MOVE, typename P>
void catch_up_elements(const Table<P> &s, int64_t b, int64_t e, const CatchUp &u) {
  using M = math_t<P>;
  for (int64_t i = b; i < e; ++i) {
    M p = MASTER ? s.master[i] : to_math<M>(s.param[i]);
    M mg_i = CENTERED ? s.mg[i] : M(0);
    M mom_i = MOMENT ? s.mom[i] : M(0);
    catch_up_element<CENTERED, MOMENT, MOVE, M>(p, s.ms[i], mg_i, mom_i, u);
    if (CENTERED) s.mg[i] = mg_i;
    if (MOMENT) s.mom[i] = mom_i;
    if (MOVE && MOMENT) {
      if (MASTER) s.master[i] = p;
      s.param[i] = from_math<P>(p);
    }
  }
}

// The merged gradient of row j into g (math type), its values summed in order.
template <typename P>
void sum_row(const Table<P> &s, const MergedRows &m, int64_t j, math_t<P> *g) {
  using M = math_t<P>;
  const int64_t w = s.width;
  const P *v = s.values + m.pos[m.start[j]] * w;
  for (int64_t c = 0; c < w; ++c) g[c] = to_math<M>(v[c]);
  for (int64_t q = m.start[j] + 1; q < m.start[j + 1]; ++q) {
    v = s.values + m.pos[q] * w;
    for (int64_t c = 0; c < w; ++c) g[c] = g[c] + to_math<M>(v[c]);
  }
}

// Rows are visited in ascending order but far apart, and their values in the gradient's order: the
// hardware prefetcher follows neither, so each row would wait on memory in turn. Requesting the lines of a
// row a few rows ahead overlaps those waits.
constexpr int64_t kPrefetchAhead = 4;

template <typename T>
void prefetch_row(const T *base, int64_t row, int64_t width, bool write) {
  if (base == nullptr) return;
  const char *p = reinterpret_cast<const char *>(base + row * width);
  const int64_t bytes = width * static_cast<int64_t>(sizeof(T));
  for (int64_t off = 0; off < bytes; off += 64) {
    if (write)
      __builtin_prefetch(p + off, 1);
    else
      __builtin_prefetch(p + off, 0);
  }
}

template <typename P>
void prefetch_touched(const Table<P> &s, const MergedRows &m, int64_t j) {
  const int64_t row = m.row[j];
  prefetch_row(s.values, m.pos[m.start[j]], s.width, false);
  prefetch_row(s.param, row, s.width, true);
  prefetch_row(s.ms, row, s.width, true);
  prefetch_row(s.mom, row, s.width, true);
  prefetch_row(s.mg, row, s.width, true);
  prefetch_row(s.master, row, s.width, true);
  prefetch_row(s.last, row, 1, true);
}

template <typename P, bool CENTERED, bool MOMENT, bool MASTER, bool MOVE>
void run_typed(const RowsLaunch &l, const Table<P> &s, int64_t t) {
  using M = math_t<P>;
  const rmsprop_ops_rows &r = *l.r;
  const Coeffs<M> c = make_coeffs<M>(*l.hp, load_scalar(l.hp->lr) * r.lr_mult, load_scalar(l.hp->rescale_grad),
                                     r.weight_decay, r.weight_decay_mode);
  const int64_t w = s.width;
  const MergedRows m = l.n > 0 ? merged_indices(l) : MergedRows{{}, {0}, {}};
  const int64_t touched = static_cast<int64_t>(m.row.size());

  if (l.catch_up) {
    // Every row, or the rows given.
    const int64_t count = l.n > 0 ? touched : l.nrows;
    for_each_range(count, w, [&](int64_t lo, int64_t hi) {
      for (int64_t j = lo; j < hi; ++j) {
        const int64_t row = l.n > 0 ? m.row[j] : j;
        const CatchUp u = make_catch_up(t - s.last[row], c);
        if (u.k > 0) catch_up_elements<CENTERED, MOMENT, MASTER, MOVE, P>(s, row * w, (row + 1) * w, u);
        s.last[row] = t;
      }
    });
    return;
  }

  if (r.mode == RMSPROP_OPS_ROWS_DENSE) {
    // Every row: runs of absent rows as one flat range with a zero gradient, touched rows with theirs.
    const CatchUp none{0, 1.0, 1.0, 0.0};
    for_each_range(l.nrows, w, [&](int64_t lo, int64_t hi) {
      std::vector<M> g(static_cast<size_t>(w));
      int64_t j = std::lower_bound(m.row.begin(), m.row.end(), lo) - m.row.begin();
      int64_t row = lo;
      while (row < hi) {
        const int64_t next = j < touched && m.row[j] < hi ? m.row[j] : hi;
        step_elements<CENTERED, MOMENT, MASTER, false, false, P>(s, row * w, next * w, nullptr, c, none);
        if (next == hi) break;
        sum_row(s, m, j, g.data());
        step_elements<CENTERED, MOMENT, MASTER, false, false, P>(s, next * w, (next + 1) * w, g.data(), c, none);
        row = next + 1;
        ++j;
      }
    });
    return;
  }

  // EXACT / LAZY: the touched rows only, each caught up first.
  for_each_range(touched, w, [&](int64_t lo, int64_t hi) {
    std::vector<M> g(static_cast<size_t>(w));
    for (int64_t j = lo; j < hi; ++j) {
      if (j + kPrefetchAhead < hi) prefetch_touched(s, m, j + kPrefetchAhead);
      const int64_t row = m.row[j];
      sum_row(s, m, j, g.data());
      const CatchUp u = make_catch_up(t - s.last[row], c);
      if (u.k > 0)
        step_elements<CENTERED, MOMENT, MASTER, MOVE, true, P>(s, row * w, (row + 1) * w, g.data(), c, u);
      else
        step_elements<CENTERED, MOMENT, MASTER, MOVE, false, P>(s, row * w, (row + 1) * w, g.data(), c, u);
      s.last[row] = t + 1;
    }
  });
}

template <typename P>
void run_flags(const RowsLaunch &l) {
  using M = math_t<P>;
  const rmsprop_ops_rows &r = *l.r;
  const Table<P> s = table<P>(l);
  const int64_t t = r.step.data != nullptr ? *static_cast<const int64_t *>(r.step.data) : 0;
  // The 16-bit storage types are the only ones a master weight may accompany (validated in rows_api.cpp).
  constexpr bool kMasterPossible = sizeof(P) == 2;
  with_row_flags(l.centered, l.moment, l.master, r.mode == RMSPROP_OPS_ROWS_LAZY, [&](auto c, auto m, auto ma, auto mv) {
    run_typed<P, decltype(c)::value, decltype(m)::value, decltype(ma)::value && kMasterPossible, decltype(mv)::value>(
        l, s, t);
  });
  if (!l.catch_up && r.step.data != nullptr) *static_cast<int64_t *>(r.step.data) = t + 1;
}

[[noreturn]] void throw_not_implemented(const std::string &msg) { throw std::invalid_argument(msg); }

}  // namespace

void run_rows_cpu(const RowsLaunch &l) {
  if (!l.catch_up && load_scalar(l.hp->skip_update) != 0.0) return;
  RMSPROP_OPS_DISPATCH_PARAM_DTYPE(l.param_dtype, P, throw_not_implemented, run_flags<P>(l));
}

}  // namespace rmsprop_ops
