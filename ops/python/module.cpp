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
#include "rmsprop_ops/scratch.h"

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

// One keyword argument of update(), read in phase 1 and handed to the core's filler once the tensors
// are described: a number (an attribute, or a scalar input's value), a list of numbers (a per-tensor
// attribute) or a one-element array (a scalar input the kernel reads).
struct Attr {
  std::string name;
  enum Kind { kNumber, kList, kArray } kind;
  double value = 0.0;
  std::vector<double> values;
  Held *held = nullptr;
};

Attr read_attr(const std::string &name, py::handle obj, std::vector<Held> &keep, intptr_t stream) {
  Attr a{name, Attr::kNumber};
  if (real_value(obj, name, a.value)) return a;
  if (PyList_Check(obj.ptr()) || PyTuple_Check(obj.ptr())) {
    a.kind = Attr::kList;
    py::tuple seq = snapshot(obj, name, "numbers");
    a.values.resize(seq.size());
    for (size_t i = 0; i < seq.size(); ++i) {
      const std::string item = name + "[" + std::to_string(i) + "]";
      if (!real_value(seq[i], item, a.values[i])) type_error(item + ": expected a number, got " + type_name(seq[i]));
    }
    return a;
  }
  if (py::isinstance<py::array>(obj) || PyCapsule_CheckExact(obj.ptr()) || py::hasattr(obj, "__dlpack__")) {
    a.kind = Attr::kArray;
    Held &h = keep.emplace_back();
    h.name = ArgName{nullptr, nullptr, 0, false};
    h.use = Use{false, false};
    a.held = &h;
    return a;  // resolved by the caller, once a.name is stable
  }
  type_error(name + ": expected a number, a list of numbers or a one-element array, got " + type_name(obj));
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

void check(int code, const char *err) {
  if (code != RMSPROP_OPS_OK) raise_status(code, err);
}

// The buffers of one update() call, kept per thread between calls: a step over thousands of tensors
// needs about a MiB of them, which, allocated and freed on every call, went back to the system and was
// faulted in again each time. A call made while this thread's buffers are in use (the caller's
// __dlpack__ or __float__ calling update() again) gets buffers of its own.
struct CallBuffers {
  std::vector<Held> keep;
  std::vector<int32_t> slot;
  std::vector<rmsprop_ops_tensor_set> sets;
  bool busy = false;
};

class Scratch {
 public:
  // Buffers for a call over n tensor sets: this thread's, trimmed when a much larger call left them large.
  explicit Scratch(size_t n) : mine_(shared().busy ? nested_ : shared()) {
    mine_.busy = true;
    rmsprop_ops::trim(mine_.keep, n * 6);
    rmsprop_ops::trim(mine_.slot, n * 6);
    rmsprop_ops::trim(mine_.sets, n);
  }
  ~Scratch() {  // with the GIL held: the Helds release their exporters here
    mine_.keep.clear();
    mine_.busy = false;
  }
  Scratch(const Scratch &) = delete;
  Scratch &operator=(const Scratch &) = delete;
  CallBuffers *operator->() { return &mine_; }

 private:
  static CallBuffers &shared() {
    thread_local CallBuffers buffers;
    return buffers;
  }
  CallBuffers nested_;
  CallBuffers &mine_;
};

// The update. The tensor lists are positional; everything else is a keyword: `centered`, `list_names`,
// `stream`, `bandwidth_probe`, and any registry attribute or scalar input by name (rmsprop_ops_set_attr),
// so that an attribute added to the registry is accepted here without being named.
void update(py::object params, py::object grads, py::object mean_squares, py::object moments,
            py::object mean_grads, py::object master_params, bool centered, bool list_names, intptr_t stream,
            bool bandwidth_probe, py::kwargs kwargs) {
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

  // A step usually follows a forward and backward pass that evicted these objects from the caches: ask
  // for every object's header at once, so that the misses overlap instead of coming one by one below.
  for (const py::tuple &t : lists)
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(t.ptr()); ++k) __builtin_prefetch(PyTuple_GET_ITEM(t.ptr(), k), 1);

  // Phase 1: resolve every argument (the caller's code may run: producers, __float__, list __iter__).
  // One allocation for every argument; reserved, so that the Helds never move once made.
  Scratch scratch(n);
  std::vector<Held> &keep = scratch->keep;
  keep.reserve(n * 6 + kwargs.size());
  std::vector<int32_t> &slot = scratch->slot;
  slot.assign(n * 6, -1);
  for (size_t k = 0; k < n; ++k) {
    for (int role = 0; role < 6; ++role) {
      py::handle obj = PyTuple_GET_ITEM(lists[role].ptr(), k);
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
  const py::dict kw = kwargs;  // a snapshot already: pybind11 collected the call's keywords into a new dict
  std::vector<Attr> attrs;
  attrs.reserve(kw.size());
  for (auto item : kw) {
    if (item.second.is_none()) continue;  // the registry default
    attrs.push_back(read_attr(py::str(item.first), item.second, keep, stream));
    Attr &a = attrs.back();
    if (a.held != nullptr) {
      a.held->name = ArgName{a.name.c_str(), a.name.c_str(), 0, false};
      resolve(item.second, *a.held, stream);
    }
  }

  // Phase 2: read the descriptors, in C only, right before the GIL is released.
  std::vector<rmsprop_ops_tensor_set> &sets = scratch->sets;
  sets.resize(n);
  for (size_t k = 0; k < n; ++k) {
    rmsprop_ops_tensor_set &s = sets[k];
    rmsprop_ops_default_tensor_set(&s);
    rmsprop_ops_tensor *dst[] = {&s.param, &s.grad, &s.mean_square, &s.moment, &s.mean_grad, &s.master_param};
    for (int role = 0; role < 6; ++role) {
      if (slot[k * 6 + role] < 0) continue;
      Held &h = keep[static_cast<size_t>(slot[k * 6 + role])];
      describe(h, *dst[role]);
    }
  }
  const int32_t dev = n > 0 ? sets[0].param.device : RMSPROP_OPS_CPU;
  rmsprop_ops_hparams hp;
  rmsprop_ops_default_hparams(&hp);
  hp.centered = centered ? 1 : 0;
  char err[1024];
  for (Attr &a : attrs) {
    const auto ns = static_cast<int64_t>(n);
    if (a.kind == Attr::kNumber) {
      check(rmsprop_ops_set_attr(&hp, sets.data(), ns, a.name.c_str(), a.value, err, sizeof err), err);
    } else if (a.kind == Attr::kList) {
      check(rmsprop_ops_set_attr_list(sets.data(), ns, a.name.c_str(), a.values.data(),
                                      static_cast<int64_t>(a.values.size()), err, sizeof err), err);
    } else {
      Held &h = *a.held;
      describe(h);
      if (h.t.numel != 1)
        value_error(a.name + ": expected a number or a one-element array, got an array of " +
                    std::to_string(h.t.numel) + " elements");
      auto where = [](int32_t d) { return d == RMSPROP_OPS_CUDA ? "cuda" : "cpu"; };
      if (h.t.device != dev)
        value_error(a.name + ": expected an array on the params' device (" + where(dev) + "), got one on " +
                    where(h.t.device));
      check(rmsprop_ops_set_scalar(&hp, a.name.c_str(), h.t.data, h.t.dtype, err, sizeof err), err);
    }
  }

  const uint32_t flags = (list_names ? RMSPROP_OPS_FLAG_LIST_NAMES : 0u) |
                         (bandwidth_probe ? RMSPROP_OPS_FLAG_BANDWIDTH_PROBE : 0u);
  int code;
  {
    // `keep` and the snapshots own every exporter until this returns.
    py::gil_scoped_release release;
    code = rmsprop_ops_update(sets.data(), static_cast<int64_t>(n), &hp, reinterpret_cast<void *>(stream), flags,
                              err, sizeof err);
  }
  check(code, err);
}

void check_attr(const std::string &op, const std::string &attr, double value) {
  char err[512];
  check(rmsprop_ops_check_attr(op.c_str(), attr.c_str(), value, err, sizeof err), err);
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
        py::arg("mean_grads"), py::arg("master_params"), py::kw_only(), py::arg("centered") = false,
        py::arg("list_names") = false, py::arg("stream") = 0, py::arg("bandwidth_probe") = false);
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
  m.def("op_stats", [] {
    rmsprop_ops_stats st{};
    rmsprop_ops_op_stats(&st);
    py::dict out;
    const char *const devices[] = {"cpu", "cuda"};
    for (int d = 0; d < 2; ++d) {
      py::dict dev;
      dev["calls"] = st.device[d].calls;
      dev["tensor_sets"] = st.device[d].tensor_sets;
      dev["elements"] = st.device[d].elements;
      out[devices[d]] = dev;
    }
    return out;
  });
  m.def("reset_op_stats", [] { rmsprop_ops_reset_op_stats(); });
  bind_rows(m);
}
