// Internal interface between the validating rows C API (rows_api.cpp) and the rows kernels
// (rows_cpu.cpp, rows_cuda.cu). What reaches the kernels has been validated: dtypes, shapes, devices,
// memory overlap and, on the CPU, every index and every counter the call reads. The CUDA kernel checks
// indices and counters on the device itself, before it writes anything.
#pragma once

#include <cstdint>
#include <type_traits>

#include "rmsprop_ops/dtypes.h"
#include "rmsprop_ops/rows_api.h"

namespace rmsprop_ops {

struct RowsLaunch {
  const rmsprop_ops_rows *r;
  const rmsprop_ops_hparams *hp;
  int64_t nrows;   // param.shape[0]
  int64_t width;   // elements per row
  int64_t n;       // indices given (0 when absent)
  int32_t param_dtype;
  int32_t index_dtype;  // RMSPROP_OPS_INT32 or RMSPROP_OPS_INT64
  bool centered;
  bool moment;     // moment buffer present
  bool master;     // master weights present
  bool catch_up;   // rmsprop_ops_rows_catch_up: no gradient, no step increment
};

// A launch's buffers as typed pointers, as both rows kernels read them (absent buffers are null).
template <typename P>
struct Table {
  using M = math_t<P>;
  P *param;
  M *ms, *mom, *mg, *master;
  int64_t *last;
  const P *values;
  int64_t width;
};

template <typename P>
Table<P> table(const RowsLaunch &l) {
  using M = math_t<P>;
  const rmsprop_ops_rows &r = *l.r;
  return {static_cast<P *>(r.param.data),        static_cast<M *>(r.mean_square.data),
          static_cast<M *>(r.moment.data),       static_cast<M *>(r.mean_grad.data),
          static_cast<M *>(r.master_param.data), static_cast<int64_t *>(r.last_step.data),
          static_cast<const P *>(r.values.data), l.width};
}

// Calls f(CENTERED, MOMENT, MASTER, MOVE) with each flag as a std::integral_constant, so that kernels can
// take them as template arguments: the one place the 16 combinations are spelled out.
template <typename F>
void with_row_flags(bool centered, bool moment, bool master, bool move, F &&f) {
  auto pick = [](bool v, auto &&g) {
    if (v)
      g(std::true_type{});
    else
      g(std::false_type{});
  };
  pick(centered, [&](auto c) {
    pick(moment, [&](auto m) { pick(master, [&](auto ma) { pick(move, [&](auto mv) { f(c, m, ma, mv); }); }); });
  });
}

void run_rows_cpu(const RowsLaunch &l);
// Throws ArgError for a bad index or counter found on the device (nothing written), std::runtime_error
// on a CUDA error; a stub raising "built without CUDA" in builds without CUDA.
void run_rows_cuda(const RowsLaunch &l, void *stream);

}  // namespace rmsprop_ops
