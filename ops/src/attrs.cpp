// The filler from (name, value) to a call's C structs, the registry defaults, and the validation of a
// call's hyper-parameters and per-tensor values: everything driven by the attribute table of registry.cpp.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "registry.h"
#include "rmsprop_ops/dtypes.h"
#include "rmsprop_ops/format.h"

namespace rmsprop_ops {
namespace {

[[noreturn]] void fail(int code, const std::string &msg) { throw ArgError{code, msg}; }

template <typename T>
T &at(void *base, size_t offset) {
  return *reinterpret_cast<T *>(static_cast<char *>(base) + offset);
}
template <typename T>
const T &at(const void *base, size_t offset) {
  return *reinterpret_cast<const T *>(static_cast<const char *>(base) + offset);
}

void write(const Field &f, void *base, double value) {
  switch (f.kind) {
    case FieldKind::kDouble: at<double>(base, f.offset) = value; break;
    case FieldKind::kInt32: at<int32_t>(base, f.offset) = static_cast<int32_t>(value); break;
    case FieldKind::kScalar: {
      auto &s = at<rmsprop_ops_scalar>(base, f.offset);
      s.value = value;
      s.ptr = nullptr;
      s.dtype = RMSPROP_OPS_FLOAT64;
      break;
    }
  }
}

double read(const Field &f, const void *base) {
  switch (f.kind) {
    case FieldKind::kDouble: return at<double>(base, f.offset);
    case FieldKind::kInt32: return at<int32_t>(base, f.offset);
    case FieldKind::kScalar: return at<rmsprop_ops_scalar>(base, f.offset).value;
  }
  return 0;
}

// `shown` is a callable giving the name for the message: formatted only when the value is refused.
template <typename Shown>
void check(const AttrSpec &spec, double value, const Shown &shown, bool entry = false) {
  if (attr_ok(spec, value)) return;
  fail(RMSPROP_OPS_VALUE_ERROR, check_attr_value(spec, value, std::string(shown()).c_str(), entry));
}

}  // namespace

void set_attr(rmsprop_ops_hparams &hp, rmsprop_ops_tensor_set *sets, int64_t nsets, const std::string &name,
              double value) {
  const AttrSpec *a = find_any_attr(name);
  if (a == nullptr) {
    const ScalarInputSpec *s = find_scalar_input(name);
    if (s == nullptr) fail(RMSPROP_OPS_VALUE_ERROR, "attr: no attribute or scalar input named '" + name + "'");
    write({FieldKind::kScalar, s->offset}, &hp, value);
    return;
  }
  if (a->scope == Scope::kList)
    fail(RMSPROP_OPS_TYPE_ERROR, name + ": expected a list of values (one per param), got one number");
  check(*a, value, [&] { return name; });
  if (a->scope == Scope::kCall) {
    write(a->field, &hp, value);
    return;
  }
  for (int64_t k = 0; k < nsets; ++k) write(a->field, &sets[k], value);
}

void set_attr_list(rmsprop_ops_tensor_set *sets, int64_t nsets, const std::string &name, const double *values,
                   int64_t n) {
  const AttrSpec *a = find_any_attr(name);
  if (a != nullptr && a->scope != Scope::kList) {  // "lr" / "weight_decay": the list form of that attribute
    const AttrSpec *base = a;
    a = nullptr;
    for (const AttrSpec &l : all_attrs())
      if (l.scope == Scope::kList && std::strcmp(l.per_tensor, base->name) == 0) a = &l;
  }
  if (a == nullptr) fail(RMSPROP_OPS_VALUE_ERROR, "attr: no per-tensor list attribute named '" + name + "'");
  if (n == 0) return;
  if (n != nsets)
    fail(RMSPROP_OPS_VALUE_ERROR, name + ": expected a number or a list of " + std::to_string(nsets) +
                                      " values (one per param), got " + std::to_string(n) + " values");
  // Entries are named by the value they set, as the tensor sets' own check names it: "lr[3]", "weight_decay[3]".
  const std::string entry = find_any_attr(a->per_tensor)->shown();
  for (int64_t k = 0; k < n; ++k) check(*a, values[k], [&] { return entry + "[" + std::to_string(k) + "]"; });
  for (int64_t k = 0; k < n; ++k) write(a->field, &sets[k], values[k]);
}

void set_scalar(rmsprop_ops_hparams &hp, const std::string &name, const void *ptr, int32_t dtype) {
  const ScalarInputSpec *s = find_scalar_input(name);
  if (s == nullptr) fail(RMSPROP_OPS_VALUE_ERROR, "input: no scalar input named '" + name + "'");
  auto &sc = at<rmsprop_ops_scalar>(&hp, s->offset);
  sc.ptr = ptr;
  sc.dtype = dtype;
  sc.value = 0.0;
}

void default_hparams(rmsprop_ops_hparams &hp) {
  static const rmsprop_ops_hparams defaults = [] {  // worked out once: every call starts from it
    rmsprop_ops_hparams d;
    std::memset(&d, 0, sizeof d);
    for (const ScalarInputSpec &s : scalar_inputs()) write({FieldKind::kScalar, s.offset}, &d, 0.0);
    for (const AttrSpec &a : all_attrs())
      if (a.scope == Scope::kCall) write(a.field, &d, a.default_value);
    return d;
  }();
  hp = defaults;
}

void default_tensor_set(rmsprop_ops_tensor_set &set) {
  static const rmsprop_ops_tensor_set defaults = [] {  // worked out once: every set of every call starts from it
    rmsprop_ops_tensor_set d;
    std::memset(&d, 0, sizeof d);
    for (const AttrSpec &a : all_attrs()) {
      // A list refining a per-tensor attribute (weight_decays) writes that attribute's field: its default.
      const bool own_field = a.scope == Scope::kList && find_any_attr(a.per_tensor)->scope == Scope::kCall;
      if (a.scope == Scope::kTensor || own_field) write(a.field, &d, a.default_value);
    }
    return d;
  }();
  set = defaults;
}

void validate_hparams(const rmsprop_ops_hparams &hp) {
  for (const AttrSpec &a : all_attrs()) {
    if (a.scope != Scope::kCall) continue;
    // A scalar given by pointer is checked where its memory can be read (validate_host_scalars).
    if (a.field.kind == FieldKind::kScalar && at<rmsprop_ops_scalar>(&hp, a.field.offset).ptr != nullptr) continue;
    check(a, read(a.field, &hp), [&] { return a.shown(); });
  }
  // The correction divides by 1 - rho^step, which is 0 for rho = 1.
  if (hp.bias_correction && hp.rho >= 1)
    fail(RMSPROP_OPS_VALUE_ERROR, "rho: expected a value < 1 with bias_correction=True (the correction divides by "
                                  "1 - rho^step), got " + py_repr(hp.rho));
}

void validate_tensor_attrs(const rmsprop_ops_tensor_set &set, int64_t k, bool list_names) {
  // Each per-tensor field once, with the attribute that names it as the caller gave it: "lr[3]" for a
  // learning-rate multiplier in a list call. Worked out once: this runs for every set of every call.
  struct Checked {
    const AttrSpec *spec, *named;
  };
  static const std::vector<Checked> fields = [] {
    std::vector<Checked> out;
    for (const AttrSpec &a : all_attrs()) {
      if (a.scope == Scope::kCall) continue;
      const AttrSpec &named = a.scope == Scope::kList ? *find_any_attr(a.per_tensor) : a;
      if (a.scope == Scope::kList && named.scope != Scope::kCall) continue;  // that attribute's own check
      out.push_back({&a, &named});
    }
    return out;
  }();
  for (const Checked &f : fields) {
    check(*f.spec, read(f.spec->field, &set), [&] {
      return list_names ? std::string(f.named->shown()) + "[" + std::to_string(k) + "]" : std::string(f.spec->shown());
    }, true);
  }
}

void validate_host_scalars(const rmsprop_ops_hparams &hp) {
  for (const ScalarInputSpec &s : scalar_inputs()) {
    const auto &sc = at<rmsprop_ops_scalar>(&hp, s.offset);
    if (sc.ptr == nullptr || s.attr == nullptr) continue;
    const AttrSpec &a = *find_any_attr(s.attr);
    check(a, load_scalar(sc), [&] { return a.shown(); });
  }
}

const std::vector<const AttrSpec *> &config_values() {
  static const std::vector<const AttrSpec *> v = [] {
    std::vector<const AttrSpec *> out;
    for (const AttrSpec &a : all_attrs())
      if (a.scope != Scope::kList) out.push_back(&a);
    return out;
  }();
  return v;
}

const std::vector<const AttrSpec *> &config_lists() {
  static const std::vector<const AttrSpec *> v = [] {
    std::vector<const AttrSpec *> out;
    for (const AttrSpec &a : all_attrs())
      if (a.scope == Scope::kList) out.push_back(&a);
    return out;
  }();
  return v;
}

}  // namespace rmsprop_ops
