#include "registry.h"

#include <cmath>
#include <cstring>
#include <deque>

#include "rmsprop_ops/dtypes.h"
#include "rmsprop_ops/format.h"
#include "rmsprop_ops/rows_api.h"

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

// The row-sparse update (rows_api.h): a table, its state, per-row and table step counters, and a
// gradient given as rows (Indices) and their values. Its attributes are the rule's, but for the options
// its catch-up of skipped rows does not model (step, nesterov, bias_correction: the table's own Step
// counter is an input of its own), plus the mode, an attribute of the rows API alone (not a field of the
// hparams, so not in all_attrs(): the filler never sees it).
OpSchema make_rows_op(const char *name, bool centered) {
  OpSchema op;
  op.name = name;
  op.centered = centered;
  op.multi = false;
  op.doc = centered ? "Centered RMSProp of a row-sparse gradient (rows_api.h)."
                    : "RMSProp of a row-sparse gradient (rows_api.h).";
  const char *math = "math type of Param";
  op.inputs = {
      {"Param", false, "float32|float64|float16|bfloat16", "table, rows along the first axis, updated in place"},
      {"Indices", false, "int64|int32", "rows of the gradient, any order; repeats are summed in order"},
      {"Values", false, "same as Param", "one row of gradient per index"},
      {"MeanSquare", false, math, "moving average of g^2"},
      {"Moment", true, math, "momentum buffer; required when momentum > 0"},
  };
  if (centered) op.inputs.push_back({"MeanGrad", false, math, "moving average of g"});
  op.inputs.push_back({"MasterParam", true, "float32 (float16/bfloat16 Param only)", "float32 master copy"});
  op.inputs.push_back({"LastStep", true, "int64", "steps each row has taken; required unless mode is dense"});
  op.inputs.push_back({"Step", true, "int64 scalar", "steps the table has taken; required unless mode is dense"});
  op.inputs.push_back({"LearningRate", true, "float32|float64 scalar", "overrides learning_rate; read on device"});
  op.inputs.push_back({"GradScale", true, "float32|float64 scalar", "multiplies rescale_grad; read on device"});
  op.inputs.push_back({"SkipUpdate", true, "bool|float scalar", "nonzero: the call is a no-op, counters included"});
  op.outputs = {"ParamOut", "MeanSquareOut", "MomentOut"};
  if (centered) op.outputs.push_back("MeanGradOut");
  op.outputs.push_back("MasterParamOut");
  op.outputs.push_back("LastStepOut");
  op.outputs.push_back("StepOut");
  op.inplace = {{"Param", "ParamOut"}, {"MeanSquare", "MeanSquareOut"}, {"Moment", "MomentOut"}};
  if (centered) op.inplace.push_back({"MeanGrad", "MeanGradOut"});
  op.inplace.push_back({"MasterParam", "MasterParamOut"});
  op.inplace.push_back({"LastStep", "LastStepOut"});
  op.inplace.push_back({"Step", "StepOut"});
  for (const AttrSpec &a : all_attrs()) {
    const bool unmodelled = !std::strcmp(a.name, "step") || !std::strcmp(a.name, "nesterov") ||
                            !std::strcmp(a.name, "bias_correction");
    if (!a.multi_only && !unmodelled) op.attrs.push_back(&a);
  }
  static const AttrSpec mode{"mode", AttrType::kEnum, RMSPROP_OPS_ROWS_EXACT, 0, 2, true, true, false,
                             {"dense", "exact", "lazy"},
                             "rows the gradient leaves out: dense (stepped with a zero gradient), exact (caught up "
                             "when next touched; no momentum, weight decay or weight clip), lazy (exact, with "
                             "momentum moves made when next touched)",
                             Scope::kCall, {FieldKind::kInt32, 0}, nullptr, nullptr, nullptr, false};
  op.attrs.push_back(&mode);
  return op;
}

// Bounds and defaults as we write them ("[0, 1]"); received values as Python prints them (py_repr).
std::string fmt(double v) { return short_repr(v); }

}  // namespace

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
      make_op("rmsprop_multi", false, true), make_op("rmsprop_centered_multi", true, true),
      make_rows_op("rmsprop_rows", false), make_rows_op("rmsprop_centered_rows", true)};
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

}  // namespace rmsprop_ops
