// The rows C API (rows_api.h): every argument validated before anything is written, then the CPU or
// CUDA rows kernel.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "checks.h"
#include "kernels.h"
#include "registry.h"
#include "rmsprop_ops/dtypes.h"
#include "rows.h"

namespace rmsprop_ops {
namespace {

const char *mode_name(int32_t mode) {
  switch (mode) {
    case RMSPROP_OPS_ROWS_DENSE: return "dense";
    case RMSPROP_OPS_ROWS_EXACT: return "exact";
    case RMSPROP_OPS_ROWS_LAZY: return "lazy";
    default: return "?";
  }
}

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

const char *where(int32_t device) { return device == RMSPROP_OPS_CUDA ? "cuda" : "cpu"; }

struct Range {
  uintptr_t lo, hi;
  bool written;
  const char *name;
};

// The checks every tensor argument shares: its structure (check_descriptor), dtype, device, writability,
// alignment; records its memory.
void check_tensor(const rmsprop_ops_tensor &t, const char *name, int32_t want_dtype, const char *dtype_why,
                  int32_t device, bool written, std::vector<Range> &ranges) {
  check_descriptor(t, [&] { return std::string(name); });
  if (t.dtype != want_dtype)
    fail(RMSPROP_OPS_TYPE_ERROR, std::string(name) + ": expected dtype " + dtype_name(want_dtype) + dtype_why +
                                     ", got " + dtype_name(t.dtype));
  if (t.device != device)
    fail(RMSPROP_OPS_VALUE_ERROR, std::string(name) + ": expected a tensor on " + where(device) +
                                      " like param, got one on " + where(t.device));
  if (written && !t.writable)
    fail(RMSPROP_OPS_VALUE_ERROR, std::string(name) + ": expected a writable array (it is updated in place), "
                                                      "got a read-only one");
  const uintptr_t lo = reinterpret_cast<uintptr_t>(t.data);
  const int64_t isz = dtype_size(t.dtype);
  if (lo % static_cast<uintptr_t>(isz) != 0)
    fail(RMSPROP_OPS_VALUE_ERROR, std::string(name) + ": expected memory aligned to " + std::to_string(isz) +
                                      " bytes, got address % " + std::to_string(isz) + " = " +
                                      std::to_string(lo % isz));
  if (t.numel > 0) ranges.push_back({lo, end_address(lo, t.numel, isz), written, name});
}

void check_overlap(std::vector<Range> &ranges) {
  std::sort(ranges.begin(), ranges.end(), [](const Range &a, const Range &b) { return a.lo < b.lo; });
  const Range *far_any = nullptr, *far_written = nullptr;
  for (const Range &r : ranges) {
    const Range *hit = nullptr;
    if (far_written != nullptr && r.lo < far_written->hi) hit = far_written;
    else if (r.written && far_any != nullptr && r.lo < far_any->hi) hit = far_any;
    if (hit != nullptr)
      fail(RMSPROP_OPS_VALUE_ERROR, std::string(r.name) + ": memory overlaps " + hit->name +
                                        " (every updated buffer needs memory of its own)");
    if (far_any == nullptr || r.hi > far_any->hi) far_any = &r;
    if (r.written && (far_written == nullptr || r.hi > far_written->hi)) far_written = &r;
  }
}

void check_scalar_dtype(const rmsprop_ops_scalar &s, const char *name, bool float_only) {
  if (s.ptr == nullptr) return;
  const bool is_float = s.dtype == RMSPROP_OPS_FLOAT32 || s.dtype == RMSPROP_OPS_FLOAT64 ||
                        s.dtype == RMSPROP_OPS_FLOAT16 || s.dtype == RMSPROP_OPS_BFLOAT16;
  const bool is_int = s.dtype == RMSPROP_OPS_BOOL || s.dtype == RMSPROP_OPS_INT32 || s.dtype == RMSPROP_OPS_INT64;
  if (!(is_float || (!float_only && is_int)))
    fail(RMSPROP_OPS_TYPE_ERROR, std::string(name) + ": expected a " + (float_only ? "floating-point" : "bool or numeric") +
                                     " scalar, got dtype " + dtype_name(s.dtype));
}

// The options an absent row's closed form cannot follow (catch_up.h): refused in EXACT and LAZY mode.
void check_closed_form(const rmsprop_ops_rows &r, const rmsprop_ops_hparams &hp) {
  const std::string mode = std::string(" in rows mode '") + mode_name(r.mode) + "'";
  if (r.weight_decay != 0)
    fail(RMSPROP_OPS_VALUE_ERROR, "weight_decay: expected 0" + mode +
                                      " (weight decay changes every row every step, an absent row's "
                                      "gradient being wd * p; use mode 'dense'), got " + num(r.weight_decay));
  if (hp.clip_weights >= 0)
    fail(RMSPROP_OPS_VALUE_ERROR, "clip_weights: expected None" + mode +
                                      " (the dense update clips every row every step; use mode 'dense'), got " +
                                      num(hp.clip_weights));
  if (r.mode == RMSPROP_OPS_ROWS_EXACT && hp.momentum != 0)
    fail(RMSPROP_OPS_VALUE_ERROR, "momentum: expected 0" + mode +
                                      " (with momentum every row moves every step; use mode 'lazy' to make "
                                      "those moves when a row is next touched, or 'dense'), got " +
                                      num(hp.momentum));
}

// Options of the dense rule the rows update does not model, in every mode: its catch-up of skipped rows
// follows neither Nesterov momentum nor bias correction, and its step counter is rows.step, not hp.step
// (the registry's rows ops leave these attributes out; a C caller's hparams still carry them).
void check_unmodelled(const rmsprop_ops_hparams &hp) {
  const char *why = " for a row-sparse update (its catch-up of skipped rows does not model it; use the dense "
                    "update), got True";
  if (hp.nesterov != 0) fail(RMSPROP_OPS_VALUE_ERROR, std::string("nesterov: expected False") + why);
  if (hp.bias_correction != 0) fail(RMSPROP_OPS_VALUE_ERROR, std::string("bias_correction: expected False") + why);
  if (hp.step.ptr != nullptr)
    fail(RMSPROP_OPS_VALUE_ERROR, "step: expected the default 1 for a row-sparse update (its step counter is "
                                  "rows.step), got a scalar in memory");
  if (hp.step.value != 1.0)
    fail(RMSPROP_OPS_VALUE_ERROR, "step: expected the default 1 for a row-sparse update (its step counter is "
                                  "rows.step), got " + num(hp.step.value));
}

RowsLaunch validate(const rmsprop_ops_rows *rp, const rmsprop_ops_hparams *hp, bool catch_up) {
  if (rp == nullptr) fail(RMSPROP_OPS_VALUE_ERROR, "rows: expected a pointer, got NULL");
  if (hp == nullptr) fail(RMSPROP_OPS_VALUE_ERROR, "hparams: expected a pointer, got NULL");
  const rmsprop_ops_rows &r = *rp;
  validate_hparams(*hp);
  check_unmodelled(*hp);
  check_scalar_dtype(hp->lr, "lr", true);
  check_scalar_dtype(hp->rescale_grad, "rescale_grad", true);
  check_scalar_dtype(hp->skip_update, "skip_update", false);
  const std::string bad_mode = check_attr_value(*find_attr(*find_op("rmsprop_rows"), "mode"), r.mode);
  if (!bad_mode.empty()) fail(RMSPROP_OPS_VALUE_ERROR, bad_mode);
  if (catch_up && r.mode == RMSPROP_OPS_ROWS_DENSE)
    fail(RMSPROP_OPS_VALUE_ERROR, "mode: expected 'exact' or 'lazy' (a dense table has nothing to catch up), "
                                  "got 'dense'");
  if (!std::isfinite(r.lr_mult) || r.lr_mult < 0)
    fail(RMSPROP_OPS_VALUE_ERROR, "lr_mult: expected a finite value >= 0, got " + num(r.lr_mult));
  if (!std::isfinite(r.weight_decay) || r.weight_decay < 0)
    fail(RMSPROP_OPS_VALUE_ERROR, "weight_decay: expected a finite value >= 0, got " + num(r.weight_decay));
  if (r.weight_decay_mode < RMSPROP_OPS_WD_L2 || r.weight_decay_mode > RMSPROP_OPS_WD_DECOUPLED)
    fail(RMSPROP_OPS_VALUE_ERROR, "weight_decay_mode: expected one of {l2, l1, decoupled}, got " +
                                      std::to_string(r.weight_decay_mode));
  if (r.mode != RMSPROP_OPS_ROWS_DENSE) check_closed_form(r, *hp);

  const rmsprop_ops_tensor &p = r.param;
  const int32_t pd = p.dtype;
  const int32_t sd = state_dtype_for(pd);
  if (sd < 0)
    fail(RMSPROP_OPS_TYPE_ERROR, "param: expected a floating-point dtype (float32, float64, float16, bfloat16), "
                                 "got " + std::string(dtype_name(pd)));
  if (p.shape == nullptr || p.ndim < 1)
    fail(RMSPROP_OPS_VALUE_ERROR, "param: expected an array of rows (ndim >= 1, rows along the first axis), got " +
                                      (p.shape == nullptr ? std::string("no shape") : "a 0-d array"));
  if (p.data == nullptr && p.numel > 0) fail(RMSPROP_OPS_VALUE_ERROR, "param: missing");
  RowsLaunch l{};
  l.r = rp;
  l.hp = hp;
  l.nrows = p.shape[0];
  l.width = 1;
  bool fits = l.nrows >= 0;
  for (int32_t d = 1; fits && d < p.ndim; ++d) {
    fits = p.shape[d] >= 0 && (p.shape[d] == 0 || l.width <= INT64_MAX / p.shape[d]);
    if (fits) l.width *= p.shape[d];
  }
  fits = fits && (l.width == 0 || l.nrows <= INT64_MAX / l.width);
  if (!fits) fail(RMSPROP_OPS_VALUE_ERROR, "param: expected a shape of at most 2^63 elements, got " + shape_str(p));
  if (l.nrows * l.width != p.numel)
    fail(RMSPROP_OPS_VALUE_ERROR, "param: expected numel " + std::to_string(l.nrows * l.width) + " (shape " +
                                      shape_str(p) + "), got " + std::to_string(p.numel));
  l.param_dtype = pd;
  l.centered = hp->centered != 0;
  l.moment = r.moment.data != nullptr;
  l.master = r.master_param.data != nullptr;
  l.catch_up = catch_up;
  const int32_t device = p.device;
  if (device != RMSPROP_OPS_CPU && device != RMSPROP_OPS_CUDA)
    fail(RMSPROP_OPS_VALUE_ERROR, "param: expected a cpu or cuda tensor, got device " + std::to_string(device));
  if (device == RMSPROP_OPS_CUDA && !built_with_cuda())
    fail(RMSPROP_OPS_NOT_IMPLEMENTED, "param: got a CUDA tensor, but rmsprop_ops was built without CUDA");
  if (device == RMSPROP_OPS_CPU) validate_host_scalars(*hp);

  std::vector<Range> ranges;
  check_tensor(p, "param", pd, "", device, true, ranges);
  // State buffers: present as the rule needs them, shaped like param, in the param's math type.
  const bool need_moment = hp->momentum > 0;
  const struct {
    const rmsprop_ops_tensor &t;
    const char *name;
    bool required, allowed;
    const char *missing, *unwanted;
  } state[] = {
      {r.mean_square, "mean_square", true, true, "", ""},
      {r.moment, "moment", need_moment, true, " (momentum > 0 needs a moment buffer)", ""},
      {r.mean_grad, "mean_grad", l.centered, l.centered, " (centered=True needs the mean gradient)",
       " when centered=False"},
      {r.master_param, "master_param", false, pd == RMSPROP_OPS_FLOAT16 || pd == RMSPROP_OPS_BFLOAT16, "",
       " (master weights are for float16/bfloat16 params)"},
  };
  for (const auto &s : state) {
    if (s.t.data == nullptr) {
      if (s.required && p.numel > 0)
        fail(RMSPROP_OPS_VALUE_ERROR, std::string(s.name) + ": expected an array" + s.missing + ", got None");
      continue;
    }
    if (!s.allowed) fail(RMSPROP_OPS_VALUE_ERROR, std::string(s.name) + ": expected None" + s.unwanted + ", got an array");
    check_tensor(s.t, s.name, sd, " (the param's math type)", device, true, ranges);
    if (!same_shape(s.t, p))
      fail(RMSPROP_OPS_VALUE_ERROR, std::string(s.name) + ": expected shape " + shape_str(p) + " like param, got " +
                                        shape_str(s.t));
  }

  // Counters: EXACT and LAZY keep one per row and one for the table; DENSE updates every row every step.
  const bool counted = r.mode != RMSPROP_OPS_ROWS_DENSE;
  if (counted && r.last_step.data == nullptr && l.nrows > 0)
    fail(RMSPROP_OPS_VALUE_ERROR, std::string("last_step: expected an int64 array of ") + std::to_string(l.nrows) +
                                      " per-row counters (rows mode '" + mode_name(r.mode) + "'), got None");
  if (!counted && r.last_step.data != nullptr)
    fail(RMSPROP_OPS_VALUE_ERROR, "last_step: expected None in rows mode 'dense' (every row is current after "
                                  "every step), got an array");
  if (r.last_step.data != nullptr) {
    check_tensor(r.last_step, "last_step", RMSPROP_OPS_INT64, " (per-row step counters)", device, true, ranges);
    if (r.last_step.numel != l.nrows || (r.last_step.shape != nullptr && r.last_step.ndim != 1))
      fail(RMSPROP_OPS_VALUE_ERROR, "last_step: expected shape (" + std::to_string(l.nrows) +
                                        ",) (one counter per row of param), got " + shape_str(r.last_step));
  }
  if (counted && r.step.data == nullptr)
    fail(RMSPROP_OPS_VALUE_ERROR, std::string("step: expected a one-element int64 array (the table's step "
                                              "counter, rows mode '") + mode_name(r.mode) + "'), got None");
  if (r.step.data != nullptr) {
    check_tensor(r.step, "step", RMSPROP_OPS_INT64, " (the table's step counter)", device, true, ranges);
    if (r.step.numel != 1)
      fail(RMSPROP_OPS_VALUE_ERROR, "step: expected one element, got " + std::to_string(r.step.numel));
  }

  // The gradient: indices and one row of values per index.
  const rmsprop_ops_tensor &ix = r.indices;
  const bool need_grad = !catch_up;
  if (ix.data == nullptr && ix.numel > 0) fail(RMSPROP_OPS_VALUE_ERROR, "indices: missing");
  if (ix.data != nullptr || ix.numel > 0 || need_grad) {
    if (ix.dtype != RMSPROP_OPS_INT64 && ix.dtype != RMSPROP_OPS_INT32)
      fail(RMSPROP_OPS_TYPE_ERROR, "indices: expected dtype int64 or int32, got " + std::string(dtype_name(ix.dtype)));
    if (ix.shape != nullptr && ix.ndim != 1)
      fail(RMSPROP_OPS_VALUE_ERROR, "indices: expected a 1-D array, got shape " + shape_str(ix));
    if (ix.data != nullptr) check_tensor(ix, "indices", ix.dtype, "", device, false, ranges);
    l.n = ix.numel;
    l.index_dtype = ix.dtype;
  }
  if (need_grad) {
    const rmsprop_ops_tensor &v = r.values;
    if (l.width > 0 && l.n > INT64_MAX / l.width)
      fail(RMSPROP_OPS_VALUE_ERROR, "indices: expected at most 2^63 gradient elements, got " + std::to_string(l.n) +
                                        " rows of " + std::to_string(l.width));
    if (v.data == nullptr && v.numel > 0) fail(RMSPROP_OPS_VALUE_ERROR, "values: missing");
    if (v.data == nullptr && l.n * l.width > 0) fail(RMSPROP_OPS_VALUE_ERROR, "values: expected an array, got None");
    if (v.dtype != pd)
      fail(RMSPROP_OPS_TYPE_ERROR, "values: expected dtype " + std::string(dtype_name(pd)) + " (the param's dtype), got " +
                                       dtype_name(v.dtype));
    bool shape_ok = v.numel == l.n * l.width;
    if (shape_ok && v.shape != nullptr) {
      shape_ok = v.ndim == p.ndim && v.shape[0] == l.n;
      for (int32_t d = 1; shape_ok && d < p.ndim; ++d) shape_ok = v.shape[d] == p.shape[d];
    }
    if (!shape_ok) {
      std::string want = "(" + std::to_string(l.n);
      for (int32_t d = 1; d < p.ndim; ++d) want += ", " + std::to_string(p.shape[d]);
      want += p.ndim == 1 ? ",)" : ")";
      fail(RMSPROP_OPS_VALUE_ERROR, "values: expected shape " + want + " (one row of param per index), got " +
                                        shape_str(v));
    }
    if (v.data != nullptr) check_tensor(v, "values", pd, "", device, false, ranges);
  }
  check_overlap(ranges);

  // Host memory: the indices and the counters they select are checked here, before any write; the CUDA
  // kernel checks its own.
  if (device == RMSPROP_OPS_CPU && counted) {
    const int64_t t = *static_cast<const int64_t *>(r.step.data);
    if (t < 0) fail(RMSPROP_OPS_VALUE_ERROR, "step: expected a count >= 0, got " + std::to_string(t));
  }
  if (device == RMSPROP_OPS_CPU && l.n > 0) {
    const int64_t *last = static_cast<const int64_t *>(r.last_step.data);
    const int64_t t = counted ? *static_cast<const int64_t *>(r.step.data) : 0;
    for (int64_t i = 0; i < l.n; ++i) {
      const int64_t row = ix.dtype == RMSPROP_OPS_INT64 ? static_cast<const int64_t *>(ix.data)[i]
                                                        : static_cast<const int32_t *>(ix.data)[i];
      if (row < 0 || row >= l.nrows)
        fail(RMSPROP_OPS_VALUE_ERROR, "indices[" + std::to_string(i) + "]: expected a row in [0, " +
                                          std::to_string(l.nrows) + "), got " + std::to_string(row));
      if (counted && (last[row] < 0 || last[row] > t))
        fail(RMSPROP_OPS_VALUE_ERROR, "last_step[" + std::to_string(row) + "]: expected a count in [0, step=" +
                                          std::to_string(t) + "], got " + std::to_string(last[row]));
    }
  }
  if (device == RMSPROP_OPS_CPU && catch_up && r.indices.data == nullptr) {
    const int64_t *last = static_cast<const int64_t *>(r.last_step.data);
    const int64_t t = *static_cast<const int64_t *>(r.step.data);
    for (int64_t row = 0; row < l.nrows; ++row)
      if (last[row] < 0 || last[row] > t)
        fail(RMSPROP_OPS_VALUE_ERROR, "last_step[" + std::to_string(row) + "]: expected a count in [0, step=" +
                                          std::to_string(t) + "], got " + std::to_string(last[row]));
  }
  return l;
}

int run(const rmsprop_ops_rows *rows, const rmsprop_ops_hparams *hp, void *stream, uint32_t flags, char *err,
        size_t errlen, bool catch_up) {
  return guarded(err, errlen, [&] {
    const RowsLaunch l = validate(rows, hp, catch_up);
    if (flags & RMSPROP_OPS_FLAG_CHECK_ONLY) return;
    if (rows->param.device == RMSPROP_OPS_CUDA)
      run_rows_cuda(l, stream);
    else
      run_rows_cpu(l);
  });
}

}  // namespace
}  // namespace rmsprop_ops

extern "C" {

int rmsprop_ops_rows_update(const rmsprop_ops_rows *rows, const rmsprop_ops_hparams *hp, void *stream,
                            uint32_t flags, char *err, size_t errlen) {
  return rmsprop_ops::run(rows, hp, stream, flags, err, errlen, false);
}

int rmsprop_ops_rows_catch_up(const rmsprop_ops_rows *rows, const rmsprop_ops_hparams *hp, void *stream,
                              uint32_t flags, char *err, size_t errlen) {
  return rmsprop_ops::run(rows, hp, stream, flags, err, errlen, true);
}

}  // extern "C"
