// Hand-written half of the Paddle custom ops: turns paddle::Tensor arguments into the core's C ABI
// structs and calls rmsprop_ops_update(). The other half (PD_BUILD_OP registrations and the kernel
// signatures) is generated from the core registry by rmsprop_ops/paddle/_codegen.py, which fills the
// Slots and Attrs below field by field, so a registry attribute without a field here fails to compile.
//
// No RMSProp arithmetic lives here: the core owns the rule.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "paddle/common/enforce.h"
#include "paddle/extension.h"
#include "rmsprop_ops/c_api.h"
#include "rmsprop_ops/dtypes.h"  // load_scalar: the core's one reader of a scalar argument

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

struct Slots {
  std::vector<paddle::Tensor *> param, grad, mean_square, moment, mean_grad, master_param;
  const paddle::Tensor *learning_rate = nullptr;
  const paddle::Tensor *grad_scale = nullptr;
  const paddle::Tensor *skip_update = nullptr;
};

struct Attrs {
  float learning_rate = 0.01f, rho = 0.9f, epsilon = 1e-6f, momentum = 0.f, weight_decay = 0.f;
  float rescale_grad = 1.f, clip_gradient = -1.f, clip_weights = -1.f;
  bool eps_in_sqrt = true, lr_in_momentum = true, clip_after_weight_decay = true;
  int weight_decay_mode = 0;
  std::vector<float> lr_mults, weight_decays;
  std::vector<int64_t> offsets;  // flat-state ops only
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
// reads it there. `range_attr`, when given, is the registry attribute whose range a CPU tensor's value
// must satisfy. The core checks the same range; checking here first lets the message name Paddle's input
// ("LearningRate") rather than the core's argument ("lr"). A GPU tensor is read only by the kernel
// (checking it would cost a host sync).
inline rmsprop_ops_scalar scalar(const paddle::Tensor *t, double value, const std::string &name,
                                 const char *expected, int32_t device, const char *range_attr = nullptr) {
  rmsprop_ops_scalar s{value, nullptr, RMSPROP_OPS_FLOAT64};
  if (t == nullptr) return s;
  check_arg(t->numel() == 1, name, ": expected a tensor holding exactly one element, got ", t->numel());
  check_arg(t->initialized(), name, ": expected a tensor holding memory, got an uninitialized one");
  const Slot slot{name.c_str(), false, 0};
  check_arg(device_code(*t, slot) == device, name, ": expected a tensor on the params' device (",
            device == RMSPROP_OPS_CUDA ? "GPU" : "CPU", "), got one on ", t->place().DebugString());
  s.ptr = t->data();
  s.dtype = checked_dtype_code(*t, slot, expected);
  const bool is_float = s.dtype == RMSPROP_OPS_FLOAT32 || s.dtype == RMSPROP_OPS_FLOAT64 ||
                        s.dtype == RMSPROP_OPS_FLOAT16 || s.dtype == RMSPROP_OPS_BFLOAT16;
  if (range_attr != nullptr && is_float && t->is_cpu()) {
    char err[512];
    const double v = rmsprop_ops::load_scalar(s);
    if (rmsprop_ops_check_attr("rmsprop", range_attr, v, err, sizeof err) != RMSPROP_OPS_OK) {
      std::string msg(err);  // "learning_rate: expected ..., got ...": name the input instead
      const std::string attr_prefix = std::string(range_attr) + ": ";
      if (msg.rfind(attr_prefix, 0) == 0) msg.erase(0, attr_prefix.size());
      fail(RMSPROP_OPS_VALUE_ERROR, name + ": " + msg);
    }
  }
  return s;
}

inline void check_list(const std::vector<paddle::Tensor *> &v, size_t n, const char *name, bool optional) {
  if (optional && v.empty()) return;
  check_arg(v.size() == n, name, ": expected ", n, " tensors (one per Param)", optional ? " or none" : "",
            ", got ", v.size());
}

// rmsprop_ops._flat.FLAT_ALIGN: the optimizer lays its buffers out with flat_offsets() there, and passes
// no offsets when a call covers a buffer whole, so the two must pack alike (tested bit for bit).
constexpr int64_t kFlatAlign = 16;

// The flat-state ops' offsets: as given, or, when none are, the tensors packed in order with every start
// aligned to kFlatAlign elements.
inline std::vector<int64_t> flat_offsets(const Slots &s, const Attrs &a) {
  const size_t n = s.param.size();
  check_arg(a.offsets.empty() || a.offsets.size() == n, "offsets: expected ", n, " values (one per Param) or "
            "none, got ", a.offsets.size());
  if (!a.offsets.empty()) return a.offsets;
  std::vector<int64_t> out(n);
  int64_t end = 0;
  for (size_t i = 0; i < n; ++i) {
    out[i] = (end + kFlatAlign - 1) / kFlatAlign * kFlatAlign;
    end = out[i] + s.param[i]->numel();
  }
  return out;
}

// A flat state buffer: 1-D, on the device, dense and contiguous like any tensor argument.
inline rmsprop_ops_tensor flat_buffer(const paddle::Tensor *buf, const char *name) {
  rmsprop_ops_tensor t = tensor_arg(buf, {name, false, 0});
  check_arg(buf->dims().size() == 1, name, ": expected a 1-D flat buffer, got ", buf->dims().size(), " dims");
  return t;
}

// Tensor i's slice of a flat buffer, shaped like its Param. Whether slices overlap each other or anything
// else, and the dtypes, are the core's checks, as for separate tensors.
inline rmsprop_ops_tensor flat_slice(rmsprop_ops_tensor t, const char *name, int64_t offset,
                                     const rmsprop_ops_tensor &param, size_t i) {
  const int64_t size = t.numel;
  check_arg(size >= param.numel, name, ": expected a flat buffer of at least ", param.numel, " elements for "
            "Param[", i, "], got ", size);
  check_arg(offset >= 0 && offset <= size - param.numel, "offsets[", i, "]: expected an integer in [0, ",
            size - param.numel, "] so that Param[", i, "]'s ", param.numel, " elements fit in ", name, " (",
            size, " elements), got ", offset);
  if (size != 0) t.data = static_cast<char *>(t.data) + offset * rmsprop_ops::dtype_size(t.dtype);
  t.numel = param.numel;
  t.shape = param.shape;
  t.ndim = param.ndim;
  return t;
}

// One call of the core for every tensor in `s`. With `flat`, MeanSquare, Moment and MeanGrad each hold one
// flat buffer for all of them (the *_flat ops).
inline void run_update(Slots &s, const Attrs &a, bool centered, bool multi, bool flat = false) {
  const size_t n = s.param.size();
  const size_t per_state = flat ? 1 : n;
  check_list(s.grad, n, "Grad", false);
  check_list(s.mean_square, per_state, "MeanSquare", false);
  check_list(s.moment, per_state, "Moment", true);
  check_list(s.master_param, n, "MasterParam", true);
  if (centered) check_list(s.mean_grad, per_state, "MeanGrad", false);
  check_arg(a.lr_mults.empty() || a.lr_mults.size() == n, "lr_mults: expected ", n, " values (one per Param) "
            "or none, got ", a.lr_mults.size());
  check_arg(a.weight_decays.empty() || a.weight_decays.size() == n, "weight_decays: expected ", n,
            " values (one per Param) or none, got ", a.weight_decays.size());
  const std::vector<int64_t> offsets = flat ? flat_offsets(s, a) : std::vector<int64_t>{};
  if (n == 0) return;
  rmsprop_ops_tensor flat_ms{}, flat_mom{}, flat_mg{};
  if (flat) {
    flat_ms = flat_buffer(s.mean_square[0], "MeanSquare");
    if (!s.moment.empty()) flat_mom = flat_buffer(s.moment[0], "Moment");
    if (centered) flat_mg = flat_buffer(s.mean_grad[0], "MeanGrad");
  }

  std::vector<rmsprop_ops_tensor_set> sets(n);
  for (size_t i = 0; i < n; ++i) {
    rmsprop_ops_tensor_set &t = sets[i];
    t.param = tensor_arg(s.param[i], {"Param", multi, i});
    t.grad = tensor_arg(s.grad[i], {"Grad", multi, i});
    t.grad.writable = 0;
    if (flat) {
      t.mean_square = flat_slice(flat_ms, "MeanSquare", offsets[i], t.param, i);
      t.moment = s.moment.empty() ? rmsprop_ops_tensor{} : flat_slice(flat_mom, "Moment", offsets[i], t.param, i);
      t.mean_grad = centered ? flat_slice(flat_mg, "MeanGrad", offsets[i], t.param, i) : rmsprop_ops_tensor{};
    } else {
      t.mean_square = tensor_arg(s.mean_square[i], {"MeanSquare", multi, i});
      t.moment = s.moment.empty() ? rmsprop_ops_tensor{} : tensor_arg(s.moment[i], {"Moment", multi, i});
      t.mean_grad = centered ? tensor_arg(s.mean_grad[i], {"MeanGrad", multi, i}) : rmsprop_ops_tensor{};
    }
    t.master_param =
        s.master_param.empty() ? rmsprop_ops_tensor{} : tensor_arg(s.master_param[i], {"MasterParam", multi, i});
    t.lr_mult = a.lr_mults.empty() ? 1.0 : static_cast<double>(a.lr_mults[i]);
    t.weight_decay = a.weight_decays.empty() ? static_cast<double>(a.weight_decay)
                                             : static_cast<double>(a.weight_decays[i]);
    t.weight_decay_mode = a.weight_decay_mode;
  }

  rmsprop_ops_hparams hp;
  rmsprop_ops_default_hparams(&hp);
  const int32_t device = sets[0].param.device;
  hp.lr = scalar(s.learning_rate, a.learning_rate, "LearningRate", "a floating-point dtype", device,
                 "learning_rate");
  hp.rescale_grad = scalar(s.grad_scale, 1.0, "GradScale", "a floating-point dtype", device, "rescale_grad");
  // GradScale multiplies rescale_grad; the core has one rescale scalar, so a GradScale tensor is only
  // accepted with the default rescale_grad attribute.
  if (hp.rescale_grad.ptr != nullptr)
    check_arg(a.rescale_grad == 1.f, "rescale_grad: expected the default 1 when a GradScale tensor is given "
              "(the two would multiply), got ", a.rescale_grad);
  else
    hp.rescale_grad.value = a.rescale_grad;
  hp.skip_update = scalar(s.skip_update, 0.0, "SkipUpdate", "a bool or numeric dtype", device);
  hp.rho = a.rho;
  hp.epsilon = a.epsilon;
  hp.momentum = a.momentum;
  hp.clip_gradient = a.clip_gradient;
  hp.clip_weights = a.clip_weights;
  hp.centered = centered ? 1 : 0;
  hp.eps_in_sqrt = a.eps_in_sqrt ? 1 : 0;
  hp.lr_in_momentum = a.lr_in_momentum ? 1 : 0;
  hp.clip_after_weight_decay = a.clip_after_weight_decay ? 1 : 0;

  void *stream = nullptr;
#if defined(PADDLE_WITH_CUDA)
  // The core launches on the stream Paddle computes the param on, so no synchronisation is needed.
  if (s.param[0]->is_gpu()) stream = reinterpret_cast<void *>(s.param[0]->stream());
#endif
  char err[1024];
  const int rc = rmsprop_ops_update(sets.data(), static_cast<int64_t>(n), &hp, stream,
                                    multi ? RMSPROP_OPS_FLAG_LIST_NAMES : 0u, err, sizeof err);
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
