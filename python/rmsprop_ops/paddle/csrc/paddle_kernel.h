// Hand-written half of the Paddle custom ops: turns paddle::Tensor arguments into the core's C ABI
// structs and calls rmsprop_ops_update(). The other half (PD_BUILD_OP registrations and the kernel
// signatures) is generated from the core registry by rmsprop_ops/paddle/_codegen.py, which hands every
// attribute and scalar input to a Call by its registry name; the core's filler (rmsprop_ops_set_attr)
// puts each where it belongs, so no attribute is named here.
//
// No RMSProp arithmetic lives here: the core owns the rule.
#pragma once

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "paddle/common/enforce.h"
#include "paddle/extension.h"
#include "rmsprop_ops/c_api.h"
#include "rmsprop_ops/dtypes.h"  // load_scalar: the core's one reader of a scalar argument
#include "rmsprop_ops/flat.h"    // the flat-state layout (offsets, slices)
#include "rmsprop_ops/scratch.h" // per-thread descriptor buffers

namespace rmsprop_ops_paddle {

// Raises the Python exception the core's status stands for (Paddle maps INVALID_ARGUMENT to ValueError,
// INVALID_TYPE to TypeError, UNIMPLEMENTED to NotImplementedError). PD_CHECK would surface as OSError.
[[noreturn]] inline void fail(int status, const std::string &msg) {
  ::common::ErrorCode code = ::common::ErrorCode::PRECONDITION_NOT_MET;
  if (status == RMSPROP_OPS_TYPE_ERROR) code = ::common::ErrorCode::INVALID_TYPE;
  if (status == RMSPROP_OPS_VALUE_ERROR) code = ::common::ErrorCode::INVALID_ARGUMENT;
  if (status == RMSPROP_OPS_NOT_IMPLEMENTED) code = ::common::ErrorCode::UNIMPLEMENTED;
  throw ::common::enforce::EnforceNotMet(::common::ErrorSummary(code, "rmsprop_ops: " + msg), __FILE__, __LINE__);
}

template <typename... Args>
inline void check_arg(bool cond, Args &&...args) {
  if (!cond) fail(RMSPROP_OPS_VALUE_ERROR, ::common::ErrorMessage(std::forward<Args>(args)...).to_string());
}

// One op call: the tensor lists by role, and the scalar inputs and attributes by registry name, in the
// order the generated kernel lists them (the registry's).
struct Call {
  bool centered = false, multi = false, flat = false;
  std::vector<paddle::Tensor *> param, grad, mean_square, moment, mean_grad, master_param;
  struct Scalar {
    const char *name;        // the input ("LearningRate")
    const char *attr;        // the attribute whose range a CPU value must satisfy, or nullptr
    bool float_only;
    const paddle::Tensor *tensor;
  };
  std::vector<Scalar> scalars;
  std::vector<std::pair<const char *, double>> attrs;
  std::vector<std::pair<const char *, std::vector<double>>> lists;
  std::vector<int64_t> offsets;  // flat-state ops only

  void scalar(const char *name, const char *attr, bool float_only, const paddle::Tensor *t) {
    scalars.push_back({name, attr, float_only, t});
  }
  void attr(const char *name, double v) { attrs.emplace_back(name, v); }
  void attr(const char *name, const std::vector<float> &v) { lists.emplace_back(name, std::vector<double>(v.begin(), v.end())); }
  void attr(const char *, const std::vector<int64_t> &v) { offsets = v; }  // the flat ops' offsets
};

inline int32_t dtype_code(paddle::DataType t) {
  switch (t) {
    case paddle::DataType::FLOAT32: return RMSPROP_OPS_FLOAT32;
    case paddle::DataType::FLOAT64: return RMSPROP_OPS_FLOAT64;
    case paddle::DataType::FLOAT16: return RMSPROP_OPS_FLOAT16;
    case paddle::DataType::BFLOAT16: return RMSPROP_OPS_BFLOAT16;
    case paddle::DataType::BOOL: return RMSPROP_OPS_BOOL;
    case paddle::DataType::INT32: return RMSPROP_OPS_INT32;
    case paddle::DataType::INT64: return RMSPROP_OPS_INT64;
    default: return RMSPROP_OPS_UNKNOWN;
  }
}

// Where a tensor sits in the op's arguments ("Param[3]"). The name is built only for an error message: a
// fused step converts thousands of tensors, and formatting every name cost more than the checks.
struct Slot {
  const char *base;
  bool multi;
  size_t index;
  std::string str() const { return multi ? std::string(base) + "[" + std::to_string(index) + "]" : base; }
};

inline int32_t device_code(const paddle::Tensor &t, const Slot &slot) {
  if (t.is_cpu()) return RMSPROP_OPS_CPU;
  if (t.is_gpu()) return RMSPROP_OPS_CUDA;
  fail(RMSPROP_OPS_VALUE_ERROR,
       slot.str() + ": expected a tensor on CPU or a CUDA GPU, got one on " + t.place().DebugString());
}

// A dtype the C ABI has no code for: name it here, where Paddle's name for it is known.
inline int32_t checked_dtype_code(const paddle::Tensor &t, const Slot &slot, const char *expected) {
  const int32_t code = dtype_code(t.dtype());
  if (code == RMSPROP_OPS_UNKNOWN)
    fail(RMSPROP_OPS_TYPE_ERROR, slot.str() + ": expected " + expected + ", got " + phi::DataTypeToString(t.dtype()));
  return code;
}

// Zero-size tensors own no allocation (data() is unusable), yet the core must still see their dtype and
// shape; it never dereferences a tensor of numel 0, so any aligned address stands in for their data.
alignas(16) inline char kNoElements[16];

// The shape points into the tensor's own metadata, which outlives the call (Paddle cannot resize an
// argument while its kernel runs), so nothing is copied.
inline rmsprop_ops_tensor tensor_arg(const paddle::Tensor *t, const Slot &slot) {
  rmsprop_ops_tensor out{};
  if (t == nullptr) return out;  // absent optional input
  if (!t->is_dense_tensor())
    fail(RMSPROP_OPS_VALUE_ERROR, slot.str() + ": expected a dense tensor, got another kind (e.g. SelectedRows)");
  const int64_t numel = t->numel();
  if (numel != 0 && !t->initialized())
    fail(RMSPROP_OPS_VALUE_ERROR, slot.str() + ": expected a tensor holding memory, got an uninitialized one "
         "with " + std::to_string(numel) + " elements");
  // Paddle's eager runner hands a custom op a contiguous copy of a strided input, so the update of a strided
  // view would be lost, and this check never sees one: rmsprop_ops.paddle.load_ops() rejects those before
  // the call. It stays for any path that passes a strided tensor through as it is.
  if (numel != 0 && !t->is_contiguous())
    fail(RMSPROP_OPS_VALUE_ERROR, slot.str() + ": expected a contiguous tensor, got a strided view");
  const auto &dims = t->dims();
  if (dims.size() < 0) fail(RMSPROP_OPS_VALUE_ERROR, slot.str() + ": expected a tensor with a shape, got one without");
  out.data = numel == 0 ? static_cast<void *>(kNoElements) : const_cast<void *>(t->data());
  out.numel = numel;
  out.shape = dims.Get();
  out.ndim = dims.size();
  out.dtype = checked_dtype_code(*t, slot, "a floating-point dtype (float32, float64, float16, bfloat16)");
  out.writable = 1;
  out.device = device_code(*t, slot);
  return out;
}

// A scalar input tensor, on the params' `device`: the kernel (and, on the CPU, the core's range check)
// reads it there. A CPU tensor's value is range-checked here first, against the attribute it stands for,
// so that the message names Paddle's input ("LearningRate") rather than the core's argument ("lr"). A
// GPU tensor is read only by the kernel (checking it would cost a host sync).
inline void set_scalar(rmsprop_ops_hparams &hp, const Call::Scalar &in, int32_t device) {
  const paddle::Tensor *t = in.tensor;
  const std::string name = in.name;
  check_arg(t->numel() == 1, name, ": expected a tensor holding exactly one element, got ", t->numel());
  check_arg(t->initialized(), name, ": expected a tensor holding memory, got an uninitialized one");
  const Slot slot{in.name, false, 0};
  check_arg(device_code(*t, slot) == device, name, ": expected a tensor on the params' device (",
            device == RMSPROP_OPS_CUDA ? "GPU" : "CPU", "), got one on ", t->place().DebugString());
  rmsprop_ops_scalar s{0.0, t->data(), 0};
  s.dtype = checked_dtype_code(*t, slot, in.float_only ? "a floating-point dtype" : "a bool or numeric dtype");
  const bool is_float = s.dtype == RMSPROP_OPS_FLOAT32 || s.dtype == RMSPROP_OPS_FLOAT64 ||
                        s.dtype == RMSPROP_OPS_FLOAT16 || s.dtype == RMSPROP_OPS_BFLOAT16;
  char err[512];
  if (in.attr != nullptr && is_float && t->is_cpu()) {
    const double v = rmsprop_ops::load_scalar(s);
    if (rmsprop_ops_check_attr("rmsprop", in.attr, v, err, sizeof err) != RMSPROP_OPS_OK) {
      std::string msg(err);  // "learning_rate: expected ..., got ...": name the input instead
      const std::string attr_prefix = std::string(in.attr) + ": ";
      if (msg.rfind(attr_prefix, 0) == 0) msg.erase(0, attr_prefix.size());
      fail(RMSPROP_OPS_VALUE_ERROR, name + ": " + msg);
    }
  }
  const int rc = rmsprop_ops_set_scalar(&hp, in.name, s.ptr, s.dtype, err, sizeof err);
  if (rc != RMSPROP_OPS_OK) fail(rc, err);
}

inline void check_list(const std::vector<paddle::Tensor *> &v, size_t n, const char *name, bool optional) {
  if (optional && v.empty()) return;
  check_arg(v.size() == n, name, ": expected ", n, " tensors (one per Param)", optional ? " or none" : "",
            ", got ", v.size());
}

// The flat-state ops' offsets: as given, or, when none are, the tensors packed in order with every start
// aligned (rmsprop_ops/flat.h: the layout the optimizer's rmsprop_ops._toolkit.flat computes too).
inline std::vector<int64_t> flat_offsets(const Call &c) {
  const size_t n = c.param.size();
  check_arg(c.offsets.empty() || c.offsets.size() == n, "offsets: expected ", n, " values (one per Param) or "
            "none, got ", c.offsets.size());
  if (!c.offsets.empty()) return c.offsets;
  std::vector<int64_t> sizes(n), out(n);
  for (size_t i = 0; i < n; ++i) sizes[i] = c.param[i]->numel();
  check_arg(rmsprop_ops_flat_offsets(sizes.data(), static_cast<int64_t>(n), RMSPROP_OPS_FLAT_ALIGN, out.data()) >= 0,
            "Param: expected sizes whose packed total fits in int64");
  return out;
}

// A flat state buffer: 1-D, on the device, dense and contiguous like any tensor argument.
inline rmsprop_ops_tensor flat_buffer(const paddle::Tensor *buf, const char *name) {
  rmsprop_ops_tensor t = tensor_arg(buf, {name, false, 0});
  check_arg(buf->dims().size() == 1, name, ": expected a 1-D flat buffer, got ", buf->dims().size(), " dims");
  return t;
}

// Tensor i's slice of a flat buffer, shaped like its Param (rmsprop_ops::flat_slice checks it fits).
inline rmsprop_ops_tensor flat_slice(const rmsprop_ops_tensor &buffer, const char *name, int64_t offset,
                                     const rmsprop_ops_tensor &param, size_t i) {
  const auto at = static_cast<double>(offset);
  if (rmsprop_ops::flat_slice_fits(buffer, at, param)) return rmsprop_ops::flat_slice_unchecked(buffer, at, param);
  const std::string idx = "[" + std::to_string(i) + "]";  // names are made only for the message
  rmsprop_ops_tensor out{};
  fail(RMSPROP_OPS_VALUE_ERROR, rmsprop_ops::flat_slice(buffer, name, at, "offsets" + idx, param, "Param" + idx, &out));
}

// One call of the core for every tensor of the call. With `flat`, MeanSquare, Moment and MeanGrad each hold
// one flat buffer for all of them (the *_flat ops).
inline void run_update(Call &c) {
  const size_t n = c.param.size();
  const size_t per_state = c.flat ? 1 : n;
  check_list(c.grad, n, "Grad", false);
  check_list(c.mean_square, per_state, "MeanSquare", false);
  check_list(c.moment, per_state, "Moment", true);
  check_list(c.master_param, n, "MasterParam", true);
  if (c.centered) check_list(c.mean_grad, per_state, "MeanGrad", false);
  for (const auto &l : c.lists)
    check_arg(l.second.empty() || l.second.size() == n, l.first, ": expected ", n, " values (one per Param) "
              "or none, got ", l.second.size());
  const std::vector<int64_t> offsets = c.flat ? flat_offsets(c) : std::vector<int64_t>{};
  if (n == 0) return;
  rmsprop_ops_tensor flat_ms{}, flat_mom{}, flat_mg{};
  if (c.flat) {
    flat_ms = flat_buffer(c.mean_square[0], "MeanSquare");
    if (!c.moment.empty()) flat_mom = flat_buffer(c.moment[0], "Moment");
    if (c.centered) flat_mg = flat_buffer(c.mean_grad[0], "MeanGrad");
  }

  std::vector<rmsprop_ops_tensor_set> &sets = rmsprop_ops::scratch<rmsprop_ops_tensor_set, 0>(n);
  for (size_t i = 0; i < n; ++i) {
    rmsprop_ops_tensor_set &t = sets[i];
    rmsprop_ops_default_tensor_set(&t);
    t.param = tensor_arg(c.param[i], {"Param", c.multi, i});
    t.grad = tensor_arg(c.grad[i], {"Grad", c.multi, i});
    t.grad.writable = 0;
    if (c.flat) {
      t.mean_square = flat_slice(flat_ms, "MeanSquare", offsets[i], t.param, i);
      t.moment = c.moment.empty() ? rmsprop_ops_tensor{} : flat_slice(flat_mom, "Moment", offsets[i], t.param, i);
      t.mean_grad = c.centered ? flat_slice(flat_mg, "MeanGrad", offsets[i], t.param, i) : rmsprop_ops_tensor{};
    } else {
      t.mean_square = tensor_arg(c.mean_square[i], {"MeanSquare", c.multi, i});
      t.moment = c.moment.empty() ? rmsprop_ops_tensor{} : tensor_arg(c.moment[i], {"Moment", c.multi, i});
      t.mean_grad = c.centered ? tensor_arg(c.mean_grad[i], {"MeanGrad", c.multi, i}) : rmsprop_ops_tensor{};
    }
    t.master_param =
        c.master_param.empty() ? rmsprop_ops_tensor{} : tensor_arg(c.master_param[i], {"MasterParam", c.multi, i});
  }

  rmsprop_ops_hparams hp;
  rmsprop_ops_default_hparams(&hp);
  hp.centered = c.centered ? 1 : 0;
  char err[1024];
  const auto ns = static_cast<int64_t>(n);
  for (const auto &a : c.attrs) {
    const int rc = rmsprop_ops_set_attr(&hp, sets.data(), ns, a.first, a.second, err, sizeof err);
    if (rc != RMSPROP_OPS_OK) fail(rc, err);
  }
  for (const auto &l : c.lists) {
    const int rc = rmsprop_ops_set_attr_list(sets.data(), ns, l.first, l.second.data(),
                                             static_cast<int64_t>(l.second.size()), err, sizeof err);
    if (rc != RMSPROP_OPS_OK) fail(rc, err);
  }
  const int32_t device = sets[0].param.device;
  for (const Call::Scalar &in : c.scalars) {
    if (in.tensor == nullptr) continue;
    // GradScale multiplies rescale_grad; the core has one rescale scalar, so a GradScale tensor is only
    // accepted with the default rescale_grad attribute.
    if (std::string(in.name) == "GradScale")
      for (const auto &a : c.attrs)
        if (std::string(a.first) == "rescale_grad")
          check_arg(a.second == 1.0, "rescale_grad: expected the default 1 when a GradScale tensor is given "
                    "(the two would multiply), got ", a.second);
    set_scalar(hp, in, device);
  }

  void *stream = nullptr;
#if defined(PADDLE_WITH_CUDA)
  // The core launches on the stream Paddle computes the param on, so no synchronisation is needed.
  if (c.param[0]->is_gpu()) stream = reinterpret_cast<void *>(c.param[0]->stream());
#endif
  const int rc = rmsprop_ops_update(sets.data(), ns, &hp, stream, c.multi ? RMSPROP_OPS_FLAG_LIST_NAMES : 0u, err,
                                    sizeof err);
  if (rc != RMSPROP_OPS_OK) fail(rc, err);
}

inline std::vector<paddle::Tensor *> ptrs(std::vector<paddle::Tensor> &v) {
  std::vector<paddle::Tensor *> out;
  out.reserve(v.size());
  for (auto &t : v) out.push_back(&t);
  return out;
}
// Const inputs are read through the same slots; the dygraph twins (see _codegen.py) also pass the optimizer
// state as const inputs and the core writes it: Paddle shares, never copies, a contiguous tensor's buffer.
inline std::vector<paddle::Tensor *> ptrs(const std::vector<paddle::Tensor> &v) {
  return ptrs(const_cast<std::vector<paddle::Tensor> &>(v));
}
inline std::vector<paddle::Tensor *> ptrs(const paddle::optional<std::vector<paddle::Tensor>> &v) {
  return v ? ptrs(*v) : std::vector<paddle::Tensor *>{};
}
inline std::vector<paddle::Tensor *> ptrs(const paddle::Tensor &t) { return {const_cast<paddle::Tensor *>(&t)}; }
inline std::vector<paddle::Tensor *> ptrs(const paddle::optional<paddle::Tensor> &t) {
  return t ? ptrs(*t) : std::vector<paddle::Tensor *>{};
}
inline const paddle::Tensor *ptr(const paddle::optional<paddle::Tensor> &t) { return t ? &*t : nullptr; }

}  // namespace rmsprop_ops_paddle
