#include "registry.h"

#include <cmath>
#include <cstring>
#include <deque>

#include "rmsprop_ops/dtypes.h"
#include "rmsprop_ops/format.h"

namespace rmsprop_ops {
namespace {

constexpr double kInf = INFINITY;

Field call(FieldKind kind, size_t offset) { return {kind, offset}; }
#define HP(field) offsetof(rmsprop_ops_hparams, field)
#define SET(field) offsetof(rmsprop_ops_tensor_set, field)

AttrSpec real(const char *name, double dflt, double lo, double hi, bool lo_in, bool hi_in, const char *doc,
              Scope scope, Field field) {
  return AttrSpec{name, AttrType::kFloat, dflt, lo, hi, lo_in, hi_in, false, {}, doc, scope, field,
                  nullptr, nullptr, nullptr, false};
}

AttrSpec flag(const char *name, bool dflt, const char *doc, size_t offset) {
  return AttrSpec{name, AttrType::kBool, dflt ? 1.0 : 0.0, 0, 1, true, true, false, {}, doc, Scope::kCall,
                  call(FieldKind::kInt32, offset), nullptr, nullptr, nullptr, false};
}

// The attributes, in the order every front end lists them (Paddle's op attributes, the MindSpore config).
// Adding one here (with its field in c_api.h and its arithmetic in rule.h) is all it takes for the
// pybind11 module, the functional API, the Paddle ops and the MindSpore op to accept it.
std::vector<AttrSpec> make_attrs() {
  std::vector<AttrSpec> a = {
      real("learning_rate", 0.01, 0, kInf, true, false, "step size; used when no LearningRate tensor is given",
           Scope::kCall, call(FieldKind::kScalar, HP(lr))),
      real("rho", 0.9, 0, 1, true, true, "decay of the mean-square (and mean-gradient) moving averages",
           Scope::kCall, call(FieldKind::kDouble, HP(rho))),
      real("epsilon", 1e-6, 0, kInf, false, false,
           "added to the denominator, inside or outside the sqrt (eps_in_sqrt)", Scope::kCall,
           call(FieldKind::kDouble, HP(epsilon))),
      real("momentum", 0.0, 0, kInf, true, false, "heavy-ball momentum factor", Scope::kCall,
           call(FieldKind::kDouble, HP(momentum))),
      flag("eps_in_sqrt", true, "true: sqrt(v + eps) (Paddle, MindSpore, Keras, TF); false: sqrt(v) + eps (torch)",
           HP(eps_in_sqrt)),
      flag("lr_in_momentum", true, "true: mom = m*mom + lr*g/d, p -= mom; false: mom = m*mom + g/d, p -= lr*mom",
           HP(lr_in_momentum)),
      real("weight_decay", 0.0, 0, kInf, true, false, "decay coefficient", Scope::kTensor,
           {FieldKind::kDouble, SET(weight_decay)}),
      AttrSpec{"weight_decay_mode", AttrType::kEnum, 0, 0, 2, true, true, false, {"l2", "l1", "decoupled"},
               "l2: g += wd*p; l1: g += wd*sign(p); decoupled: p -= lr*wd*p", Scope::kTensor,
               {FieldKind::kInt32, SET(weight_decay_mode)}, nullptr, nullptr, nullptr, false},
      real("rescale_grad", 1.0, 0, kInf, false, false, "multiplies the gradient first (inverse loss scale)",
           Scope::kCall, call(FieldKind::kScalar, HP(rescale_grad))),
      real("clip_gradient", -1.0, 0, kInf, true, false, "clip the gradient to [-c, c]; negative disables",
           Scope::kCall, call(FieldKind::kDouble, HP(clip_gradient))),
      flag("clip_after_weight_decay", true, "true: clip(g + wd*p) (MXNet); false: clip(g) + wd*p (Paddle)",
           HP(clip_after_weight_decay)),
      real("clip_weights", -1.0, 0, kInf, true, false,
           "clip the param to [-c, c] after the update; negative disables", Scope::kCall,
           call(FieldKind::kDouble, HP(clip_weights))),
      real("step", 1.0, 1, kInf, true, false,
           "this update's number, counted from 1, for bias_correction; used when no CurrentStep tensor is given",
           Scope::kCall, call(FieldKind::kScalar, HP(step))),
      flag("nesterov", false, "Nesterov momentum: p -= upd + momentum*mom, upd the new step (optax)",
           HP(nesterov)),
      flag("bias_correction", false, "use ms / (1 - rho^step) (and mg likewise, centered) (optax)",
           HP(bias_correction)),
      flag("maximize", false, "ascend the objective: the gradient is negated before anything else (torch)",
           HP(maximize)),
      real("lr_mults", 1.0, 0, kInf, true, false, "per-tensor multipliers of the learning rate (empty: all 1)",
           Scope::kList, {FieldKind::kDouble, SET(lr_mult)}),
      real("weight_decays", 0.0, 0, kInf, true, false, "per-tensor weight decay (empty: weight_decay for all)",
           Scope::kList, {FieldKind::kDouble, SET(weight_decay)}),
  };
  for (AttrSpec &s : a) {
    if (std::strcmp(s.name, "clip_gradient") == 0 || std::strcmp(s.name, "clip_weights") == 0)
      s.negative_disables = true;
    if (std::strcmp(s.name, "learning_rate") == 0) {
      s.c_name = "lr";
      s.input = "LearningRate";
    }
    if (std::strcmp(s.name, "rescale_grad") == 0) s.input = "GradScale";
    if (std::strcmp(s.name, "step") == 0) s.input = "CurrentStep";
    if (s.scope == Scope::kList) {
      s.type = AttrType::kFloatList;
      s.multi_only = true;
      s.per_tensor = std::strcmp(s.name, "lr_mults") == 0 ? "learning_rate" : "weight_decay";
      if (std::strcmp(s.name, "lr_mults") == 0) s.c_name = "lr_mult";
    }
  }
  return a;
}

OpSchema make_op(const char *name, bool centered, bool multi) {
  OpSchema op;
  op.name = name;
  op.centered = centered;
  op.multi = multi;
  op.doc = centered ? "Centered RMSProp (Graves 2013): normalises by sqrt(ms - mg^2 + eps)."
                    : "RMSProp (Tieleman & Hinton 2012): normalises by sqrt(ms + eps).";
  const char *list = multi ? "[]" : "";
  auto n = [list](const char *base) {
    static std::deque<std::string> keep;  // deque: c_str() pointers stay valid as it grows
    keep.push_back(std::string(base) + list);
    return keep.back().c_str();
  };
  op.inputs = {
      {n("Param"), false, "float32|float64|float16|bfloat16", "parameter, updated in place"},
      {n("Grad"), false, "same as Param", "gradient"},
      {n("MeanSquare"), false, "math type of Param (float32, or float64 for float64)",
       "moving average of g^2"},
      {n("Moment"), true, "math type of Param", "momentum buffer; required when momentum > 0"},
  };
  if (centered)
    op.inputs.push_back({n("MeanGrad"), false, "math type of Param", "moving average of g"});
  op.inputs.push_back({n("MasterParam"), true, "float32 (float16/bfloat16 Param only)",
                       "float32 master copy the math reads and writes"});
  for (const ScalarInputSpec &s : scalar_inputs()) op.inputs.push_back({s.name, true, s.dtype_rule, s.doc});
  op.outputs = {n("ParamOut"), n("MeanSquareOut"), n("MomentOut")};
  if (centered) op.outputs.push_back(n("MeanGradOut"));
  op.outputs.push_back(n("MasterParamOut"));
  op.inplace = {{op.inputs[0].name, op.outputs[0]}, {op.inputs[2].name, op.outputs[1]},
                {op.inputs[3].name, op.outputs[2]}};
  if (centered) op.inplace.push_back({op.inputs[4].name, op.outputs[3]});
  op.inplace.push_back({op.inputs[centered ? 5 : 4].name, op.outputs.back()});
  for (const AttrSpec &a : all_attrs())
    if (multi || !a.multi_only) op.attrs.push_back(&a);
  return op;
}

// Bounds and defaults as we write them ("[0, 1]"); received values as Python prints them (py_repr).
std::string fmt(double v) { return short_repr(v); }

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

// Whether `value` is valid for the attribute: the test alone, so that a valid value costs no string.
bool attr_ok(const AttrSpec &spec, double value) {
  if (!std::isfinite(value)) return false;
  if (spec.negative_disables && value < 0) return true;
  if (spec.type == AttrType::kBool) return value == 0 || value == 1;
  if (spec.type == AttrType::kEnum)
    return value >= 0 && value < static_cast<double>(spec.choices.size()) && std::floor(value) == value;
  const bool lo_ok = spec.lo_inclusive ? value >= spec.lo : value > spec.lo;
  const bool hi_ok = std::isinf(spec.hi) || (spec.hi_inclusive ? value <= spec.hi : value < spec.hi);
  return lo_ok && hi_ok;
}

// `shown` is a callable giving the name for the message: formatted only when the value is refused.
template <typename Shown>
void check(const AttrSpec &spec, double value, const Shown &shown, bool entry = false) {
  if (attr_ok(spec, value)) return;
  fail(RMSPROP_OPS_VALUE_ERROR, check_attr_value(spec, value, std::string(shown()).c_str(), entry));
}

}  // namespace

const std::vector<AttrSpec> &all_attrs() {
  static const std::vector<AttrSpec> attrs = make_attrs();
  return attrs;
}

const std::vector<ScalarInputSpec> &scalar_inputs() {
  static const std::vector<ScalarInputSpec> inputs = {
      {"LearningRate", "learning_rate", "lr", HP(lr), true, "float32|float64 scalar",
       "overrides learning_rate; read on device"},
      {"GradScale", "rescale_grad", "rescale_grad", HP(rescale_grad), true, "float32|float64 scalar",
       "multiplies rescale_grad; read on device"},
      {"SkipUpdate", nullptr, "skip_update", HP(skip_update), false, "bool|float scalar",
       "nonzero: the call is a no-op (overflowed step)"},
      {"CurrentStep", "step", "step", HP(step), false, "float32|float64|int32|int64 scalar",
       "overrides step (a device-side update counter); read on device"},
  };
  return inputs;
}

const std::vector<OpSchema> &all_ops() {
  static const std::vector<OpSchema> ops = {
      make_op("rmsprop", false, false), make_op("rmsprop_centered", true, false),
      make_op("rmsprop_multi", false, true), make_op("rmsprop_centered_multi", true, true)};
  return ops;
}

const OpSchema *find_op(const std::string &name) {
  for (const auto &op : all_ops())
    if (name == op.name) return &op;
  return nullptr;
}

const AttrSpec *find_attr(const OpSchema &op, const std::string &name) {
  for (const AttrSpec *a : op.attrs)
    if (name == a->name) return a;
  return nullptr;
}

const AttrSpec *find_any_attr(const std::string &name) {
  for (const AttrSpec &a : all_attrs())
    if (name == a.name || (a.c_name != nullptr && name == a.c_name)) return &a;
  return nullptr;
}

const ScalarInputSpec *find_scalar_input(const std::string &name) {
  for (const ScalarInputSpec &s : scalar_inputs()) {
    if (name == s.name || name == s.arg) return &s;
    const AttrSpec *a = s.attr != nullptr ? find_any_attr(s.attr) : nullptr;
    if (a != nullptr && (name == a->name || name == a->shown())) return &s;
  }
  return nullptr;
}

std::string check_attr_value(const AttrSpec &spec, double value, const char *shown_name, bool entry) {
  if (attr_ok(spec, value)) return "";
  const std::string head = std::string(shown_name != nullptr ? shown_name : spec.name) + ": ";
  // Entries of per-tensor lists (and a tensor set's own values) get one message for both ways to be wrong.
  const bool per_tensor =
      (entry || spec.scope == Scope::kList) && spec.type != AttrType::kEnum && spec.type != AttrType::kBool;
  if (!std::isfinite(value))
    return head + (per_tensor ? "expected a finite value >= " + fmt(spec.lo) : "expected a finite number") + ", got " +
           py_repr(value);
  if (spec.negative_disables && value < 0) return "";
  if (spec.type == AttrType::kBool) {
    if (value == 0 || value == 1) return "";
    return head + "expected a bool, got " + py_repr(value);
  }
  if (spec.type == AttrType::kEnum) {
    for (size_t i = 0; i < spec.choices.size(); ++i)
      if (value == static_cast<double>(i)) return "";
    std::string opts;
    for (size_t i = 0; i < spec.choices.size(); ++i) opts += (i ? ", " : "") + std::string(spec.choices[i]);
    return head + "expected one of {" + opts + "}, got " + py_repr(value);
  }
  const bool lo_ok = spec.lo_inclusive ? value >= spec.lo : value > spec.lo;
  const bool hi_ok = std::isinf(spec.hi) || (spec.hi_inclusive ? value <= spec.hi : value < spec.hi);
  if (lo_ok && hi_ok) return "";
  std::string range;
  if (std::isinf(spec.hi))
    range = std::string(spec.lo_inclusive ? ">= " : "> ") + fmt(spec.lo);
  else
    range = std::string("in ") + (spec.lo_inclusive ? "[" : "(") + fmt(spec.lo) + ", " + fmt(spec.hi) +
            (spec.hi_inclusive ? "]" : ")");
  if (spec.negative_disables) range += " (or negative to disable)";
  return head + (per_tensor ? "expected a finite value " : "expected a value ") + range + ", got " + py_repr(value);
}

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
