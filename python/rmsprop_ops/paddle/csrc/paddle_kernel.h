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

inline int32_t device_code(const paddle::Tensor &t, const std::string &name) {
  if (t.is_cpu()) return RMSPROP_OPS_CPU;
  PD_CHECK(t.is_gpu(), "rmsprop_ops: ", name, " must be on CPU or a CUDA GPU, got place ", t.place().DebugString());
  return RMSPROP_OPS_CUDA;
}

// Shapes must outlive the rmsprop_ops_tensor that points at them, so the converter owns them.
class Converter {
 public:
  rmsprop_ops_tensor operator()(const paddle::Tensor *t, const std::string &name) {
    rmsprop_ops_tensor out{};
    if (t == nullptr || !t->initialized()) return out;  // absent optional input
    PD_CHECK(t->is_dense_tensor(), "rmsprop_ops: ", name, " must be a dense tensor");
    PD_CHECK(t->is_contiguous(), "rmsprop_ops: ", name, " must be contiguous");
    shapes_.push_back(t->shape());
    const auto &shape = shapes_.back();
    out.data = const_cast<void *>(t->data());
    out.numel = t->numel();
    out.shape = shape.data();
    out.ndim = static_cast<int32_t>(shape.size());
    out.dtype = dtype_code(t->dtype());
    out.writable = 1;
    out.device = device_code(*t, name);
    return out;
  }

 private:
  std::vector<std::vector<int64_t>> shapes_;  // a deque would do too; reserve keeps pointers stable
 public:
  explicit Converter(size_t n) { shapes_.reserve(n); }
};

inline rmsprop_ops_scalar scalar(const paddle::Tensor *t, double value, const std::string &name) {
  rmsprop_ops_scalar s{value, nullptr, RMSPROP_OPS_FLOAT64};
  if (t == nullptr || !t->initialized()) return s;
  check_arg(t->numel() == 1, name, " must hold exactly one element, got ", t->numel());
  s.ptr = t->data();
  s.dtype = dtype_code(t->dtype());
  return s;
}

inline std::string slot_name(const char *base, bool multi, size_t i) {
  return multi ? std::string(base) + "[" + std::to_string(i) + "]" : std::string(base);
}

inline void check_list(const std::vector<paddle::Tensor *> &v, size_t n, const char *name) {
  check_arg(v.empty() || v.size() == n, name, " must be absent or hold one tensor per Param (",
           n, "), got ", v.size());
}

// One call of the core for every tensor in `s`.
inline void run_update(Slots &s, const Attrs &a, bool centered, bool multi) {
  const size_t n = s.param.size();
  check_arg(s.grad.size() == n, "Grad must hold one tensor per Param (", n, "), got ", s.grad.size());
  check_arg(s.mean_square.size() == n, "MeanSquare must hold one tensor per Param (", n, "), got ",
           s.mean_square.size());
  check_list(s.moment, n, "Moment");
  check_list(s.master_param, n, "MasterParam");
  if (centered)
    check_arg(s.mean_grad.size() == n, "MeanGrad must hold one tensor per Param (", n, "), got ",
             s.mean_grad.size());
  check_arg(a.lr_mults.empty() || a.lr_mults.size() == n, "lr_mults must be empty or hold ", n,
           " values, got ", a.lr_mults.size());
  check_arg(a.weight_decays.empty() || a.weight_decays.size() == n, "weight_decays must be empty or hold ",
           n, " values, got ", a.weight_decays.size());
  if (n == 0) return;

  Converter conv(6 * n);
  std::vector<rmsprop_ops_tensor_set> sets(n);
  for (size_t i = 0; i < n; ++i) {
    rmsprop_ops_tensor_set &t = sets[i];
    t.param = conv(s.param[i], slot_name("Param", multi, i));
    t.grad = conv(s.grad[i], slot_name("Grad", multi, i));
    t.grad.writable = 0;
    t.mean_square = conv(s.mean_square[i], slot_name("MeanSquare", multi, i));
    t.moment = s.moment.empty() ? rmsprop_ops_tensor{} : conv(s.moment[i], slot_name("Moment", multi, i));
    t.mean_grad = centered ? conv(s.mean_grad[i], slot_name("MeanGrad", multi, i)) : rmsprop_ops_tensor{};
    t.master_param =
        s.master_param.empty() ? rmsprop_ops_tensor{} : conv(s.master_param[i], slot_name("MasterParam", multi, i));
    t.lr_mult = a.lr_mults.empty() ? 1.0 : static_cast<double>(a.lr_mults[i]);
    t.weight_decay = a.weight_decays.empty() ? static_cast<double>(a.weight_decay)
                                             : static_cast<double>(a.weight_decays[i]);
    t.weight_decay_mode = a.weight_decay_mode;
  }

  rmsprop_ops_hparams hp;
  rmsprop_ops_default_hparams(&hp);
  hp.lr = scalar(s.learning_rate, a.learning_rate, "LearningRate");
  hp.rescale_grad = scalar(s.grad_scale, 1.0, "GradScale");
  // GradScale multiplies rescale_grad; the core has one rescale scalar, so a GradScale tensor is only
  // accepted with the default rescale_grad attribute.
  if (hp.rescale_grad.ptr != nullptr)
    check_arg(a.rescale_grad == 1.f, "give either a GradScale tensor or a rescale_grad attribute, not both");
  else
    hp.rescale_grad.value = a.rescale_grad;
  hp.skip_update = scalar(s.skip_update, 0.0, "SkipUpdate");
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
inline std::vector<paddle::Tensor *> ptrs(const std::vector<paddle::Tensor> &v) {
  return ptrs(const_cast<std::vector<paddle::Tensor> &>(v));
}
inline std::vector<paddle::Tensor *> ptrs(paddle::optional<std::vector<paddle::Tensor>> &v) {
  return v ? ptrs(*v) : std::vector<paddle::Tensor *>{};
}
inline std::vector<paddle::Tensor *> ptrs(paddle::Tensor &t) { return {&t}; }
inline std::vector<paddle::Tensor *> ptrs(const paddle::Tensor &t) { return {const_cast<paddle::Tensor *>(&t)}; }
inline std::vector<paddle::Tensor *> ptrs(paddle::optional<paddle::Tensor> &t) {
  return t ? std::vector<paddle::Tensor *>{&*t} : std::vector<paddle::Tensor *>{};
}
inline const paddle::Tensor *ptr(const paddle::optional<paddle::Tensor> &t) { return t ? &*t : nullptr; }

}  // namespace rmsprop_ops_paddle
