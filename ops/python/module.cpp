// pybind11 front end of the core: turns NumPy arrays and DLPack-capable arrays into rmsprop_ops_tensor
// descriptors and calls the C API with the GIL released. Nothing here computes: hyper-parameters are
// checked by the registry, tensors by rmsprop_ops_update.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <string>
#include <vector>

#include "arrays.h"
#include "rmsprop_ops/c_api.h"

namespace py = pybind11;
using namespace rmsprop_ops_py;

namespace {

// A list argument, read once: a tuple owning a reference to every entry. The call works on this snapshot
// only, so code run later in the call (a producer's __dlpack__, another thread while Python code runs)
// can replace or drop the caller's entries without touching what is being updated.
py::tuple snapshot(py::handle obj, const std::string &name, const char *what) {
  if (!PyList_Check(obj.ptr()) && !PyTuple_Check(obj.ptr()))
    type_error(name + ": expected a list or tuple of " + what + ", got " + type_name(obj));
  PyObject *t = PySequence_Tuple(obj.ptr());  // a list subclass's __iter__ / __len__ may run here
  if (t == nullptr) {
    py::error_already_set e;
    raised_while(name, "reading the list", e);
  }
  return py::reinterpret_steal<py::tuple>(t);
}

py::tuple tensor_list(py::handle obj, const std::string &name, size_t n, bool optional) {
  if (obj.is_none()) {
    if (!optional) type_error(name + ": expected a list of arrays, got None");
    py::tuple nones(n);
    for (size_t i = 0; i < n; ++i) nones[i] = py::none();
    return nones;
  }
  py::tuple t = snapshot(obj, name, "arrays");
  if (t.size() != n)
    value_error(name + ": expected " + std::to_string(n) + " entries (one per param), got " + std::to_string(t.size()));
  return t;
}

// numbers.Real and numpy.bool_, looked up once (never released: the module outlives no interpreter).
PyObject *cached(const char *module, const char *attr) {
  PyObject *m = PyImport_ImportModule(module);
  if (m == nullptr) throw py::error_already_set();
  PyObject *a = PyObject_GetAttrString(m, attr);
  Py_DECREF(m);
  if (a == nullptr) throw py::error_already_set();
  return a;
}

// A real number (bool, int, float, a NumPy scalar: numbers.Real, numpy.bool_), as a double. Returns false
// for anything else (arrays, tensors: those are read by the kernel); raises a named error when reading
// the number fails (its __float__ raising, an int too large for a double).
bool real_value(py::handle obj, const std::string &name, double &out) {
  PyObject *o = obj.ptr();
  if (PyFloat_Check(o)) {
    out = PyFloat_AS_DOUBLE(o);
    return true;
  }
  static PyObject *const real = cached("numbers", "Real");
  static PyObject *const np_bool = cached("numpy", "bool_");
  if (!PyLong_Check(o) && PyObject_IsInstance(o, np_bool) != 1) {
    const int is_real = PyObject_IsInstance(o, real);  // an ABC: a __instancecheck__ or __class__ may run
    if (is_real < 0) {
      py::error_already_set e;
      raised_while(name, "isinstance(value, numbers.Real)", e);
    }
    if (is_real == 0) return false;
  }
  const double v = PyFloat_AsDouble(o);  // the caller's __float__ / __index__ may run
  if (v == -1.0 && PyErr_Occurred()) {
    py::error_already_set e;
    if (e.matches(PyExc_OverflowError))
      value_error(name + ": expected a finite number, got an int too large for a float");
    raised_while(name, "float()", e);
  }
  out = v;
  return true;
}

// A hyper-parameter that may be a Python number or a 0-d / 1-element array. An array is read by the kernel
// (and, on the CPU, by the core's range check), so it must live on the params' device: checked in
// finish_scalar, once the params are described.
struct Scalar {
  rmsprop_ops_scalar *dst;
  Held *held;
};

Scalar parse_scalar(py::handle obj, const char *name_str, rmsprop_ops_scalar &s, std::vector<Held> &keep,
                    intptr_t stream) {
  s.ptr = nullptr;
  s.dtype = RMSPROP_OPS_FLOAT64;
  double v = 0.0;
  if (real_value(obj, name_str, v)) {
    s.value = v;
    return {&s, nullptr};
  }
  if (py::isinstance<py::array>(obj) || PyCapsule_CheckExact(obj.ptr()) || py::hasattr(obj, "__dlpack__")) {
    Held &h = keep.emplace_back();
    h.name = ArgName{name_str, name_str, 0, false};
    h.use = Use{false, false};
    resolve(obj, h, stream);
    return {&s, &h};
  }
  type_error(std::string(name_str) + ": expected a number or a one-element array, got " + type_name(obj));
}

void finish_scalar(const Scalar &sc, int32_t device) {
  if (sc.held == nullptr) return;
  Held &h = *sc.held;
  describe(h);
  const std::string name = h.name.str();
  if (h.t.numel != 1)
    value_error(name + ": expected a number or a one-element array, got an array of " + std::to_string(h.t.numel) +
                " elements");
  auto where = [](int32_t d) { return d == RMSPROP_OPS_CUDA ? "cuda" : "cpu"; };
  if (h.t.device != device)
    value_error(name + ": expected an array on the params' device (" + where(device) + "), got one on " +
                where(h.t.device));
  sc.dst->ptr = h.t.data;
  sc.dst->dtype = h.t.dtype;
  sc.dst->value = 0.0;
}

std::vector<double> per_tensor(py::handle obj, const std::string &name, size_t n, double dflt) {
  std::vector<double> v(n, dflt);
  if (obj.is_none()) return v;
  double x = 0.0;
  if (!PyList_Check(obj.ptr()) && !PyTuple_Check(obj.ptr())) {
    if (!real_value(obj, name, x))
      type_error(name + ": expected a number or a list of " + std::to_string(n) + " values (one per param), got " +
                 type_name(obj));
    v.assign(n, x);
    return v;
  }
  py::tuple seq = snapshot(obj, name, "numbers");
  if (seq.size() != n)
    value_error(name + ": expected a number or a list of " + std::to_string(n) + " values (one per param), got " +
                std::to_string(seq.size()) + " values");
  for (size_t i = 0; i < n; ++i) {
    const std::string item = name + "[" + std::to_string(i) + "]";
    if (!real_value(seq[i], item, v[i])) type_error(item + ": expected a number, got " + type_name(seq[i]));
  }
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
            intptr_t stream, bool bandwidth_probe) {
  py::tuple P = snapshot(params, "params", "arrays");
  const size_t n = P.size();
  const py::tuple lists[] = {P,
                             tensor_list(grads, "grads", n, false),
                             tensor_list(mean_squares, "mean_squares", n, false),
                             tensor_list(moments, "moments", n, true),
                             tensor_list(mean_grads, "mean_grads", n, true),
                             tensor_list(master_params, "master_params", n, true)};
  static const char *const kSingle[] = {"param", "grad", "mean_square", "moment", "mean_grad", "master_param"};
  static const char *const kList[] = {"params", "grads", "mean_squares", "moments", "mean_grads", "master_params"};
  const auto lr_mult = per_tensor(lr_mults, "lr", n, 1.0);
  const auto wds = per_tensor(weight_decay, "weight_decay", n, 0.0);

  // Phase 1: resolve every argument (the caller's code may run: producers, __float__).
  // One allocation for every argument; reserved, so that the Helds never move once made.
  std::vector<Held> keep;
  keep.reserve(n * 6 + 3);
  std::vector<int32_t> slot(n * 6, -1);
  for (size_t k = 0; k < n; ++k) {
    for (int role = 0; role < 6; ++role) {
      py::handle obj = lists[role][k];
      const ArgName name{kSingle[role], kList[role], k, list_names};
      if (obj.is_none()) {
        if (role < 3) type_error(name.str() + ": expected an array, got None");
        continue;
      }
      Held &h = keep.emplace_back();
      h.name = name;
      h.use = Use{true, role != 1};
      resolve(obj, h, stream);
      slot[k * 6 + role] = static_cast<int32_t>(keep.size() - 1);
    }
  }
  rmsprop_ops_hparams hp;
  rmsprop_ops_default_hparams(&hp);
  const Scalar scalars[] = {parse_scalar(lr, "lr", hp.lr, keep, stream),
                            parse_scalar(rescale_grad, "rescale_grad", hp.rescale_grad, keep, stream),
                            parse_scalar(skip_update, "skip_update", hp.skip_update, keep, stream)};

  // Phase 2: read the descriptors, in C only, right before the GIL is released.
  std::vector<rmsprop_ops_tensor_set> sets(n);
  for (size_t k = 0; k < n; ++k) {
    rmsprop_ops_tensor_set &s = sets[k];
    rmsprop_ops_tensor *dst[] = {&s.param, &s.grad, &s.mean_square, &s.moment, &s.mean_grad, &s.master_param};
    for (int role = 0; role < 6; ++role) {
      if (slot[k * 6 + role] < 0) continue;
      Held &h = keep[static_cast<size_t>(slot[k * 6 + role])];
      describe(h);
      *dst[role] = h.t;
    }
    s.lr_mult = lr_mult[k];
    s.weight_decay = wds[k];
    s.weight_decay_mode = weight_decay_mode;
  }
  const int32_t dev = n > 0 ? sets[0].param.device : RMSPROP_OPS_CPU;
  for (const Scalar &sc : scalars) finish_scalar(sc, dev);
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
                         (bandwidth_probe ? RMSPROP_OPS_FLAG_BANDWIDTH_PROBE : 0u);
  char err[1024];
  int code;
  {
    // `keep` and the snapshots own every exporter until this returns.
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

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "rmsprop_ops core: pybind11 bindings of the C API (see rmsprop_ops/c_api.h).";
  m.def("update", &update, py::arg("params"), py::arg("grads"), py::arg("mean_squares"), py::arg("moments"),
        py::arg("mean_grads"), py::arg("master_params"), py::kw_only(), py::arg("lr"), py::arg("lr_mults"),
        py::arg("rho"), py::arg("epsilon"), py::arg("momentum"), py::arg("centered"), py::arg("eps_in_sqrt"),
        py::arg("lr_in_momentum"), py::arg("weight_decay"), py::arg("weight_decay_mode"),
        py::arg("rescale_grad"), py::arg("clip_gradient"), py::arg("clip_weights"),
        py::arg("clip_after_weight_decay"), py::arg("skip_update"), py::arg("list_names"),
        py::arg("stream") = 0, py::arg("bandwidth_probe") = false);
  m.def("check_attr", &check_attr, py::arg("op"), py::arg("attr"), py::arg("value"));
  m.def("registry_json", [] { return std::string(rmsprop_ops_registry_json()); });
  m.def("built_with_cuda", [] { return rmsprop_ops_built_with_cuda() != 0; });
  m.def("cuda_available", [] { return rmsprop_ops_cuda_available() != 0; });
  m.def("set_num_threads", [](int n) { rmsprop_ops_set_num_threads(n); }, py::arg("n"));
  m.attr("MAX_THREADS") = RMSPROP_OPS_MAX_THREADS;
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
}
