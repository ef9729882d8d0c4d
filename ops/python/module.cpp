// pybind11 front end of the core: turns NumPy arrays and DLPack-capable arrays into rmsprop_ops_tensor
// descriptors and calls the C API with the GIL released. Nothing here computes: hyper-parameters are
// checked by the registry, tensors by rmsprop_ops_update.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "rmsprop_ops/c_api.h"

namespace py = pybind11;

namespace {

// Minimal DLPack ABI (https://dmlc.github.io/dlpack), legacy unversioned capsule.
struct DLDevice {
  int32_t device_type;
  int32_t device_id;
};
struct DLDataType {
  uint8_t code;
  uint8_t bits;
  uint16_t lanes;
};
struct DLTensor {
  void *data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t *shape;
  int64_t *strides;
  uint64_t byte_offset;
};
struct DLManagedTensor {
  DLTensor dl_tensor;
  void *manager_ctx;
  void (*deleter)(DLManagedTensor *self);
};
enum { kDLInt = 0, kDLUInt = 1, kDLFloat = 2, kDLBfloat = 4, kDLBool = 6 };
enum { kDLCPU = 1, kDLCUDA = 2, kDLCUDAHost = 3, kDLCUDAManaged = 13 };

// One argument as the C API sees it, plus whatever keeps its memory alive until the call returns (the
// call runs without the GIL, so another thread could drop the caller's last reference meanwhile). Kept
// in a std::deque, which never moves an element, so t.shape may point into dims.
struct Held {
  static constexpr int kInlineDims = 8;
  rmsprop_ops_tensor t{};
  int64_t dims[kInlineDims];
  std::vector<int64_t> more_dims;
  py::object owner;
  DLManagedTensor *dl = nullptr;
  Held() = default;
  Held(const Held &) = delete;
  Held &operator=(const Held &) = delete;
  ~Held() {
    if (dl != nullptr && dl->deleter != nullptr) dl->deleter(dl);
  }
  template <typename T>
  void set_shape(const T *shape, int32_t ndim) {
    int64_t *out = dims;
    if (ndim > kInlineDims) {
      more_dims.resize(static_cast<size_t>(ndim));
      out = more_dims.data();
    }
    for (int32_t d = 0; d < ndim; ++d) out[d] = static_cast<int64_t>(shape[d]);
    t.shape = out;
    t.ndim = ndim;
  }
};

// An argument's name for error messages ("grads[3]", or "grad" in a single-tensor call). Formatted only
// when a message needs it: a step over thousands of tensors would otherwise build thousands of strings.
struct ArgName {
  const char *single;
  const char *list;
  size_t index;
  bool in_list;
  std::string str() const { return in_list ? std::string(list) + "[" + std::to_string(index) + "]" : single; }
};

ArgName scalar_name(const char *name) { return ArgName{name, name, 0, false}; }

std::string type_name(py::handle h) { return py::str(py::type::of(h).attr("__name__")); }

[[noreturn]] void type_error(const std::string &msg) { throw py::type_error(msg); }
[[noreturn]] void value_error(const std::string &msg) { throw py::value_error(msg); }

int32_t numpy_dtype(const py::dtype &dt, const ArgName &name, bool tensor) {
  const char kind = dt.kind();
  const auto size = dt.itemsize();
  if (kind == 'f' && size == 4) return RMSPROP_OPS_FLOAT32;
  if (kind == 'f' && size == 8) return RMSPROP_OPS_FLOAT64;
  if (kind == 'f' && size == 2) return RMSPROP_OPS_FLOAT16;
  const std::string dname = py::str(dt);
  if (dname == "bfloat16") return RMSPROP_OPS_BFLOAT16;
  if (!tensor) {
    if (kind == 'b') return RMSPROP_OPS_BOOL;
    if (kind == 'i' && size == 4) return RMSPROP_OPS_INT32;
    if (kind == 'i' && size == 8) return RMSPROP_OPS_INT64;
  }
  type_error(name.str() + ": expected a floating-point array (float32, float64, float16, bfloat16), got dtype " +
             dname);
}

int32_t dlpack_dtype(const DLDataType &dt, const ArgName &name, bool tensor) {
  if (dt.lanes == 1) {
    if (dt.code == kDLFloat && dt.bits == 32) return RMSPROP_OPS_FLOAT32;
    if (dt.code == kDLFloat && dt.bits == 64) return RMSPROP_OPS_FLOAT64;
    if (dt.code == kDLFloat && dt.bits == 16) return RMSPROP_OPS_FLOAT16;
    if (dt.code == kDLBfloat && dt.bits == 16) return RMSPROP_OPS_BFLOAT16;
    if (!tensor) {
      if (dt.code == kDLBool || (dt.code == kDLUInt && dt.bits == 8)) return RMSPROP_OPS_BOOL;
      if (dt.code == kDLInt && dt.bits == 32) return RMSPROP_OPS_INT32;
      if (dt.code == kDLInt && dt.bits == 64) return RMSPROP_OPS_INT64;
    }
  }
  static const char *const codes[] = {"int", "uint", "float", "opaque", "bfloat", "complex", "bool"};
  const std::string code = dt.code < 7 ? codes[dt.code] : "code" + std::to_string(dt.code);
  type_error(name.str() + ": expected a floating-point array (float32, float64, float16, bfloat16), got dtype " + code +
             std::to_string(dt.bits) + (dt.lanes != 1 ? "x" + std::to_string(dt.lanes) : ""));
}

void from_numpy(const py::array &a, const ArgName &name, bool tensor, Held &h) {
  h.t.dtype = numpy_dtype(a.dtype(), name, tensor);
  if (!(a.flags() & py::array::c_style))
    value_error(name.str() + ": expected a C-contiguous array (the update is in place, so a contiguous copy would "
                       "not update yours), got one with strides " + std::string(py::str(a.attr("strides"))));
  h.owner = a;
  h.set_shape(a.shape(), static_cast<int32_t>(a.ndim()));
  h.t.data = const_cast<void *>(a.data());
  h.t.numel = a.size();
  h.t.writable = a.writeable() ? 1 : 0;
  h.t.device = RMSPROP_OPS_CPU;
}

// Takes over an unconsumed legacy DLPack capsule (renamed 'used_dltensor', as the protocol asks).
void from_capsule(PyObject *cap, const ArgName &name, bool tensor, Held &h) {
  auto *m = static_cast<DLManagedTensor *>(PyCapsule_GetPointer(cap, "dltensor"));
  PyCapsule_SetName(cap, "used_dltensor");
  h.dl = m;  // from here on we own it: ~Held calls its deleter
  const DLTensor &t = m->dl_tensor;
  h.t.dtype = dlpack_dtype(t.dtype, name, tensor);
  h.set_shape(t.shape, t.ndim);
  int64_t numel = 1;
  for (int32_t d = 0; d < t.ndim; ++d) numel *= t.shape[d];
  if (t.strides != nullptr && numel > 0) {
    int64_t expect = 1;
    for (int32_t d = t.ndim - 1; d >= 0; --d) {
      if (t.shape[d] != 1 && t.strides[d] != expect)
        value_error(name.str() + ": expected a C-contiguous array (the update is in place, so a contiguous copy "
                           "would not update yours), got a strided one");
      expect *= t.shape[d];
    }
  }
  h.t.data = static_cast<char *>(t.data) + t.byte_offset;
  h.t.numel = numel;
  h.t.writable = 1;  // the legacy protocol carries no read-only flag
  if (t.device.device_type == kDLCPU || t.device.device_type == kDLCUDAHost)
    h.t.device = RMSPROP_OPS_CPU;
  else if (t.device.device_type == kDLCUDA || t.device.device_type == kDLCUDAManaged)
    h.t.device = RMSPROP_OPS_CUDA;
  else
    value_error(name.str() + ": expected a cpu or cuda array, got DLPack device type " +
                std::to_string(t.device.device_type));
}

// `stream`: the cudaStream_t the update will run on (0: the legacy default stream, DLPack's 1), which the
// producer orders its pending work before.
void from_dlpack(py::handle obj, const ArgName &name, bool tensor, Held &h, intptr_t stream) {
  py::tuple dev = obj.attr("__dlpack_device__")();
  const int dev_type = dev[0].cast<int>();
  py::object cap_obj;
  try {
    if (dev_type == kDLCUDA || dev_type == kDLCUDAManaged)
      cap_obj = obj.attr("__dlpack__")(py::arg("stream") = stream == 0 ? intptr_t{1} : stream);
    else
      cap_obj = obj.attr("__dlpack__")();
  } catch (py::error_already_set &e) {  // the producer's refusal (sparse, requires grad, ...), named
    type_error(name.str() + ": expected an array exportable through DLPack, but __dlpack__() raised " + e.what());
  }
  PyObject *cap = cap_obj.ptr();
  if (!PyCapsule_IsValid(cap, "dltensor"))
    type_error(name.str() + ": __dlpack__() did not return an unconsumed 'dltensor' capsule");
  from_capsule(cap, name, tensor, h);
}

void parse_array(py::handle obj, const ArgName &name, bool tensor, Held &h, intptr_t stream) {
  if (py::isinstance<py::array>(obj)) {
    from_numpy(py::reinterpret_borrow<py::array>(obj), name, tensor, h);
  } else if (PyCapsule_CheckExact(obj.ptr())) {
    // A capsule made by the caller (the torch fast path of _dlpack.py): the producer's work is already
    // ordered before `stream`.
    if (!PyCapsule_IsValid(obj.ptr(), "dltensor"))
      type_error(name.str() + ": expected an unconsumed 'dltensor' DLPack capsule, got a capsule named '" +
                 std::string(PyCapsule_GetName(obj.ptr()) ? PyCapsule_GetName(obj.ptr()) : "") + "'");
    from_capsule(obj.ptr(), name, tensor, h);
  } else if (py::hasattr(obj, "__dlpack__") && py::hasattr(obj, "__dlpack_device__")) {
    from_dlpack(obj, name, tensor, h, stream);
  } else {
    type_error(name.str() + ": expected a NumPy array or a DLPack-capable array, got " + type_name(obj));
  }
}

// A hyper-parameter that may be a Python number or a 0-d / 1-element array. An array is read by the kernel
// (and, on the CPU, by the core's range check), so it must live on the params' `device`.
void parse_scalar(py::handle obj, const char *name_str, rmsprop_ops_scalar &s, std::deque<Held> &keep,
                  intptr_t stream, int32_t device) {
  const ArgName name = scalar_name(name_str);
  s.ptr = nullptr;
  s.dtype = RMSPROP_OPS_FLOAT64;
  if (py::isinstance<py::bool_>(obj) || py::isinstance<py::int_>(obj) || py::isinstance<py::float_>(obj)) {
    s.value = obj.cast<double>();
    return;
  }
  if (py::isinstance<py::array>(obj) || py::hasattr(obj, "__dlpack__")) {
    Held &h = keep.emplace_back();
    parse_array(obj, name, false, h, stream);
    if (h.t.numel != 1)
      value_error(name.str() + ": expected a number or a one-element array, got an array of " +
                  std::to_string(h.t.numel) + " elements");
    auto where = [](int32_t d) { return d == RMSPROP_OPS_CUDA ? "cuda" : "cpu"; };
    if (h.t.device != device)
      value_error(name.str() + ": expected an array on the params' device (" + where(device) + "), got one on " +
                  where(h.t.device));
    s.ptr = h.t.data;
    s.dtype = h.t.dtype;
    s.value = 0.0;
    return;
  }
  type_error(name.str() + ": expected a number or a one-element array, got " + type_name(obj));
}

std::vector<py::handle> as_list(py::handle obj, const std::string &name, size_t n, bool optional) {
  std::vector<py::handle> out;
  if (obj.is_none()) {
    if (!optional) type_error(name + ": expected a list of arrays, got None");
    out.assign(n, py::none());
    return out;
  }
  if (!py::isinstance<py::list>(obj) && !py::isinstance<py::tuple>(obj))
    type_error(name + ": expected a list or tuple of arrays, got " + type_name(obj));
  py::sequence seq = py::reinterpret_borrow<py::sequence>(obj);
  if (static_cast<size_t>(seq.size()) != n)
    value_error(name + ": expected " + std::to_string(n) + " entries (one per param), got " +
                std::to_string(seq.size()));
  for (auto item : seq) out.push_back(item);
  return out;
}

std::vector<double> per_tensor(py::handle obj, const std::string &name, size_t n, double dflt) {
  std::vector<double> v(n, dflt);
  if (obj.is_none()) return v;
  if (py::isinstance<py::float_>(obj) || py::isinstance<py::int_>(obj)) {
    v.assign(n, obj.cast<double>());
    return v;
  }
  py::sequence seq = py::reinterpret_borrow<py::sequence>(obj);
  if (static_cast<size_t>(seq.size()) != n)
    value_error(name + ": expected " + std::to_string(n) + " values (one per param), got " +
                std::to_string(seq.size()));
  for (size_t i = 0; i < n; ++i) v[i] = seq[i].cast<double>();
  return v;
}

void raise_status(int code, const char *msg) {
  switch (code) {
    case RMSPROP_OPS_OK: return;
    case RMSPROP_OPS_TYPE_ERROR: throw py::type_error(msg);
    case RMSPROP_OPS_VALUE_ERROR: throw py::value_error(msg);
    case RMSPROP_OPS_NOT_IMPLEMENTED: {
      PyErr_SetString(PyExc_NotImplementedError, msg);
      throw py::error_already_set();
    }
    default: throw std::runtime_error(msg);
  }
}

void update(py::object params, py::object grads, py::object mean_squares, py::object moments,
            py::object mean_grads, py::object master_params, py::object lr, py::object lr_mults, double rho,
            double epsilon, double momentum, bool centered, bool eps_in_sqrt, bool lr_in_momentum,
            py::object weight_decay, int weight_decay_mode, py::object rescale_grad, double clip_gradient,
            double clip_weights, bool clip_after_weight_decay, py::object skip_update, bool list_names,
            intptr_t stream, bool check_only, bool bandwidth_probe) {
  auto nm = [&](const char *single_name, const char *list_name, size_t k) {
    return ArgName{single_name, list_name, k, list_names};
  };
  if (!py::isinstance<py::list>(params) && !py::isinstance<py::tuple>(params))
    type_error("params: expected a list or tuple of arrays, got " + type_name(params));
  const size_t n = py::len(params);
  auto P = as_list(params, "params", n, false);
  auto G = as_list(grads, "grads", n, false);
  auto MS = as_list(mean_squares, "mean_squares", n, false);
  auto MOM = as_list(moments, "moments", n, true);
  auto MG = as_list(mean_grads, "mean_grads", n, true);
  auto MASTER = as_list(master_params, "master_params", n, true);
  const auto lr_mult = per_tensor(lr_mults, "lr", n, 1.0);
  const auto wds = per_tensor(weight_decay, "weight_decay", n, 0.0);

  std::deque<Held> keep;
  auto tensor = [&](py::handle obj, const ArgName &name) -> rmsprop_ops_tensor {
    if (obj.is_none()) return rmsprop_ops_tensor{};
    Held &h = keep.emplace_back();
    parse_array(obj, name, true, h, stream);
    return h.t;
  };
  std::vector<rmsprop_ops_tensor_set> sets(n);
  for (size_t k = 0; k < n; ++k) {
    rmsprop_ops_tensor_set &s = sets[k];
    if (P[k].is_none()) type_error(nm("param", "params", k).str() + ": expected an array, got None");
    if (G[k].is_none()) type_error(nm("grad", "grads", k).str() + ": expected an array, got None");
    if (MS[k].is_none()) type_error(nm("mean_square", "mean_squares", k).str() + ": expected an array, got None");
    s.param = tensor(P[k], nm("param", "params", k));
    s.grad = tensor(G[k], nm("grad", "grads", k));
    s.mean_square = tensor(MS[k], nm("mean_square", "mean_squares", k));
    s.moment = tensor(MOM[k], nm("moment", "moments", k));
    s.mean_grad = tensor(MG[k], nm("mean_grad", "mean_grads", k));
    s.master_param = tensor(MASTER[k], nm("master_param", "master_params", k));
    s.lr_mult = lr_mult[k];
    s.weight_decay = wds[k];
    s.weight_decay_mode = weight_decay_mode;
  }
  rmsprop_ops_hparams hp;
  rmsprop_ops_default_hparams(&hp);
  const int32_t dev = n > 0 ? sets[0].param.device : RMSPROP_OPS_CPU;
  parse_scalar(lr, "lr", hp.lr, keep, stream, dev);
  parse_scalar(rescale_grad, "rescale_grad", hp.rescale_grad, keep, stream, dev);
  parse_scalar(skip_update, "skip_update", hp.skip_update, keep, stream, dev);
  hp.rho = rho;
  hp.epsilon = epsilon;
  hp.momentum = momentum;
  hp.clip_gradient = clip_gradient;
  hp.clip_weights = clip_weights;
  hp.centered = centered;
  hp.eps_in_sqrt = eps_in_sqrt;
  hp.lr_in_momentum = lr_in_momentum;
  hp.clip_after_weight_decay = clip_after_weight_decay;

  const uint32_t flags = (list_names ? RMSPROP_OPS_FLAG_LIST_NAMES : 0u) |
                         (check_only ? RMSPROP_OPS_FLAG_CHECK_ONLY : 0u) |
                         (bandwidth_probe ? RMSPROP_OPS_FLAG_BANDWIDTH_PROBE : 0u);
  char err[1024];
  int code;
  {
    py::gil_scoped_release release;
    code = rmsprop_ops_update(sets.data(), static_cast<int64_t>(n), &hp, reinterpret_cast<void *>(stream), flags,
                              err, sizeof err);
  }
  raise_status(code, err);
}

void check_attr(const std::string &op, const std::string &attr, double value) {
  char err[512];
  raise_status(rmsprop_ops_check_attr(op.c_str(), attr.c_str(), value, err, sizeof err), err);
}

py::tuple partition(int64_t total, int32_t nthreads, int32_t tid, int64_t align) {
  int64_t b = 0, e = 0;
  rmsprop_ops_partition(total, nthreads, tid, align, &b, &e);
  return py::make_tuple(b, e);
}

py::list cuda_launch_plan(const std::vector<int64_t> &numels, int32_t sm_count) {
  const auto nsets = static_cast<int64_t>(numels.size());
  const int64_t n = rmsprop_ops_cuda_launch_plan(numels.data(), nsets, sm_count, nullptr, 0);
  std::vector<int64_t> out(static_cast<size_t>(6 * n));
  rmsprop_ops_cuda_launch_plan(numels.data(), nsets, sm_count, out.data(), n);
  py::list launches;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t *o = out.data() + 6 * i;
    launches.append(py::make_tuple(o[0], o[1], py::make_tuple(o[2], o[3]), py::make_tuple(o[4], o[5])));
  }
  return launches;
}

// The rows API's binding, written against the helpers above.
#include "rows_binding.h"

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "rmsprop_ops core: pybind11 bindings of the C API (see rmsprop_ops/c_api.h).";
  m.def("update", &update, py::arg("params"), py::arg("grads"), py::arg("mean_squares"), py::arg("moments"),
        py::arg("mean_grads"), py::arg("master_params"), py::kw_only(), py::arg("lr"), py::arg("lr_mults"),
        py::arg("rho"), py::arg("epsilon"), py::arg("momentum"), py::arg("centered"), py::arg("eps_in_sqrt"),
        py::arg("lr_in_momentum"), py::arg("weight_decay"), py::arg("weight_decay_mode"),
        py::arg("rescale_grad"), py::arg("clip_gradient"), py::arg("clip_weights"),
        py::arg("clip_after_weight_decay"), py::arg("skip_update"), py::arg("list_names"),
        py::arg("stream") = 0, py::arg("check_only") = false, py::arg("bandwidth_probe") = false);
  m.def("check_attr", &check_attr, py::arg("op"), py::arg("attr"), py::arg("value"));
  m.def("registry_json", [] { return std::string(rmsprop_ops_registry_json()); });
  m.def("built_with_cuda", [] { return rmsprop_ops_built_with_cuda() != 0; });
  m.def("cuda_available", [] { return rmsprop_ops_cuda_available() != 0; });
  m.def("set_num_threads", [](int n) { rmsprop_ops_set_num_threads(n); });
  m.def("get_num_threads", [] { return rmsprop_ops_get_num_threads(); });
  m.def("partition", &partition);
  m.def("cuda_launch_plan", &cuda_launch_plan, py::arg("numels"), py::arg("sm_count") = 0);
  m.def("cuda_chunk", &rmsprop_ops_cuda_chunk, py::arg("total"), py::arg("nsets"), py::arg("sm_count"));
  m.def("cuda_launch_limits", [] {
    int32_t sets = 0, blocks = 0;
    rmsprop_ops_cuda_launch_limits(&sets, &blocks);
    return py::make_tuple(sets, blocks);
  });
  m.def("abi_version", [] { return rmsprop_ops_abi_version(); });
  bind_rows(m);
}
