#include "registry.h"

#include <cmath>
#include <cstdio>
#include <deque>
#include <sstream>

#include "kernels.h"
#include "rmsprop_ops/dtypes.h"
#include "rmsprop_ops/rows_api.h"

namespace rmsprop_ops {
namespace {

constexpr double kInf = INFINITY;

std::vector<AttrSpec> rule_attrs(bool multi) {
  std::vector<AttrSpec> a = {
      {"learning_rate", AttrType::kFloat, 0.01, 0, kInf, true, false, false, {},
       "step size; used when no LearningRate tensor is given"},
      {"rho", AttrType::kFloat, 0.9, 0, 1, true, true, false, {},
       "decay of the mean-square (and mean-gradient) moving averages"},
      {"epsilon", AttrType::kFloat, 1e-6, 0, kInf, false, false, false, {},
       "added to the denominator, inside or outside the sqrt (eps_in_sqrt)"},
      {"momentum", AttrType::kFloat, 0.0, 0, kInf, true, false, false, {}, "heavy-ball momentum factor"},
      {"eps_in_sqrt", AttrType::kBool, 1, 0, 1, true, true, false, {},
       "true: sqrt(v + eps) (Paddle, MindSpore, Keras, TF); false: sqrt(v) + eps (torch)"},
      {"lr_in_momentum", AttrType::kBool, 1, 0, 1, true, true, false, {},
       "true: mom = m*mom + lr*g/d, p -= mom; false: mom = m*mom + g/d, p -= lr*mom"},
      {"weight_decay", AttrType::kFloat, 0.0, 0, kInf, true, false, false, {}, "decay coefficient"},
      {"weight_decay_mode", AttrType::kEnum, 0, 0, 2, true, true, false, {"l2", "l1", "decoupled"},
       "l2: g += wd*p; l1: g += wd*sign(p); decoupled: p -= lr*wd*p"},
      {"rescale_grad", AttrType::kFloat, 1.0, 0, kInf, false, false, false, {},
       "multiplies the gradient first (inverse loss scale)"},
      {"clip_gradient", AttrType::kFloat, -1.0, 0, kInf, true, false, true, {},
       "clip the gradient to [-c, c]; negative disables"},
      {"clip_after_weight_decay", AttrType::kBool, 1, 0, 1, true, true, false, {},
       "true: clip(g + wd*p) (MXNet); false: clip(g) + wd*p (Paddle)"},
      {"clip_weights", AttrType::kFloat, -1.0, 0, kInf, true, false, true, {},
       "clip the param to [-c, c] after the update; negative disables"},
  };
  if (multi) {
    a.push_back({"lr_mults", AttrType::kFloatList, 1.0, 0, kInf, true, false, false, {},
                 "per-tensor multipliers of the learning rate (empty: all 1)"});
    a.push_back({"weight_decays", AttrType::kFloatList, 0.0, 0, kInf, true, false, false, {},
                 "per-tensor weight decay (empty: weight_decay for all)"});
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
  op.inputs.push_back({"LearningRate", true, "float32|float64 scalar", "overrides learning_rate; read on device"});
  op.inputs.push_back({"GradScale", true, "float32|float64 scalar", "multiplies rescale_grad; read on device"});
  op.inputs.push_back({"SkipUpdate", true, "bool|float scalar", "nonzero: the call is a no-op (overflowed step)"});
  op.outputs = {n("ParamOut"), n("MeanSquareOut"), n("MomentOut")};
  if (centered) op.outputs.push_back(n("MeanGradOut"));
  op.outputs.push_back(n("MasterParamOut"));
  op.inplace = {{op.inputs[0].name, op.outputs[0]}, {op.inputs[2].name, op.outputs[1]},
                {op.inputs[3].name, op.outputs[2]}};
  if (centered) op.inplace.push_back({op.inputs[4].name, op.outputs[3]});
  op.inplace.push_back({op.inputs[centered ? 5 : 4].name, op.outputs.back()});
  op.attrs = rule_attrs(multi);
  return op;
}

// The row-sparse update (rows_api.h): a table, its state, per-row and table step counters, and a
// gradient given as rows (Indices) and their values.
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
  op.attrs = rule_attrs(false);
  op.attrs.push_back({"mode", AttrType::kEnum, RMSPROP_OPS_ROWS_EXACT, 0, 2, true, true, false,
                      {"dense", "exact", "lazy"},
                      "rows the gradient leaves out: dense (stepped with a zero gradient), exact (caught up "
                      "when next touched; no momentum, weight decay or weight clip), lazy (exact, with "
                      "momentum moves made when next touched)"});
  return op;
}

std::string fmt(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string json_str(const std::string &s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o + "\"";
}

std::string json_num(double v) { return std::isfinite(v) ? fmt(v) : "null"; }

const char *type_name(AttrType t) {
  switch (t) {
    case AttrType::kFloat: return "float";
    case AttrType::kBool: return "bool";
    case AttrType::kEnum: return "enum";
    case AttrType::kFloatList: return "float[]";
  }
  return "?";
}

}  // namespace

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
  for (const auto &a : op.attrs)
    if (name == a.name) return &a;
  return nullptr;
}

std::string check_attr_value(const AttrSpec &spec, double value, const char *shown_name) {
  const std::string head = std::string(shown_name != nullptr ? shown_name : spec.name) + ": ";
  if (!std::isfinite(value)) return head + "expected a finite number, got " + fmt(value);
  if (spec.negative_disables && value < 0) return "";
  if (spec.type == AttrType::kBool) {
    if (value == 0 || value == 1) return "";
    return head + "expected a bool, got " + fmt(value);
  }
  if (spec.type == AttrType::kEnum) {
    for (size_t i = 0; i < spec.choices.size(); ++i)
      if (value == static_cast<double>(i)) return "";
    std::string opts;
    for (size_t i = 0; i < spec.choices.size(); ++i) opts += (i ? ", " : "") + std::string(spec.choices[i]);
    return head + "expected one of {" + opts + "}, got " + fmt(value);
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
  return head + "expected a value " + range + ", got " + fmt(value);
}

namespace {
void check_hparam(const rmsprop_ops_hparams &hp, const char *name, double v, const char *shown = nullptr) {
  const OpSchema &op = *find_op(hp.centered ? "rmsprop_centered" : "rmsprop");
  const std::string e = check_attr_value(*find_attr(op, name), v, shown);
  if (!e.empty()) throw ArgError{RMSPROP_OPS_VALUE_ERROR, e};
}
}  // namespace

void validate_host_scalars(const rmsprop_ops_hparams &hp) {
  if (hp.lr.ptr != nullptr) check_hparam(hp, "learning_rate", load_scalar(hp.lr), "lr");
  if (hp.rescale_grad.ptr != nullptr) check_hparam(hp, "rescale_grad", load_scalar(hp.rescale_grad));
}

void validate_hparams(const rmsprop_ops_hparams &hp) {
  auto check = [&](const char *name, double v, const char *shown = nullptr) { check_hparam(hp, name, v, shown); };
  // The C struct and the functional API call it lr; errors name the argument the caller passed.
  if (hp.lr.ptr == nullptr) check("learning_rate", hp.lr.value, "lr");
  if (hp.rescale_grad.ptr == nullptr) check("rescale_grad", hp.rescale_grad.value);
  check("rho", hp.rho);
  check("epsilon", hp.epsilon);
  check("momentum", hp.momentum);
  check("clip_gradient", hp.clip_gradient);
  check("clip_weights", hp.clip_weights);
  check("eps_in_sqrt", hp.eps_in_sqrt);
  check("lr_in_momentum", hp.lr_in_momentum);
  check("clip_after_weight_decay", hp.clip_after_weight_decay);
}

const std::string &registry_json() {
  static const std::string json = [] {
    std::ostringstream o;
    o << "{\"abi_version\": " << RMSPROP_OPS_ABI_VERSION << ", \"ops\": [";
    bool first_op = true;
    for (const auto &op : all_ops()) {
      o << (first_op ? "" : ", ") << "{\"name\": " << json_str(op.name) << ", \"doc\": " << json_str(op.doc)
        << ", \"centered\": " << (op.centered ? "true" : "false")
        << ", \"multi_tensor\": " << (op.multi ? "true" : "false") << ", \"inputs\": [";
      first_op = false;
      for (size_t i = 0; i < op.inputs.size(); ++i) {
        const auto &t = op.inputs[i];
        o << (i ? ", " : "") << "{\"name\": " << json_str(t.name)
          << ", \"optional\": " << (t.optional ? "true" : "false") << ", \"dtype\": " << json_str(t.dtype_rule)
          << ", \"doc\": " << json_str(t.doc) << "}";
      }
      o << "], \"outputs\": [";
      for (size_t i = 0; i < op.outputs.size(); ++i) o << (i ? ", " : "") << json_str(op.outputs[i]);
      o << "], \"inplace\": {";
      for (size_t i = 0; i < op.inplace.size(); ++i)
        o << (i ? ", " : "") << json_str(op.inplace[i].first) << ": " << json_str(op.inplace[i].second);
      o << "}, \"attrs\": [";
      for (size_t i = 0; i < op.attrs.size(); ++i) {
        const auto &a = op.attrs[i];
        o << (i ? ", " : "") << "{\"name\": " << json_str(a.name) << ", \"type\": " << json_str(type_name(a.type))
          << ", \"default\": ";
        if (a.type == AttrType::kBool)
          o << (a.default_value != 0 ? "true" : "false");
        else if (a.type == AttrType::kEnum)
          o << json_str(a.choices[static_cast<size_t>(a.default_value)]);
        else if (a.type == AttrType::kFloatList)
          o << "[]";
        else
          o << json_num(a.default_value);
        o << ", \"min\": " << json_num(a.lo) << ", \"max\": " << json_num(a.hi)
          << ", \"min_inclusive\": " << (a.lo_inclusive ? "true" : "false")
          << ", \"max_inclusive\": " << (a.hi_inclusive ? "true" : "false")
          << ", \"negative_disables\": " << (a.negative_disables ? "true" : "false") << ", \"choices\": [";
        for (size_t k = 0; k < a.choices.size(); ++k) o << (k ? ", " : "") << json_str(a.choices[k]);
        o << "], \"doc\": " << json_str(a.doc) << "}";
      }
      o << "], \"kernels\": [{\"device\": \"cpu\", \"dtypes\": [\"float32\", \"float64\", \"float16\", \"bfloat16\"]}";
      if (built_with_cuda())
        o << ", {\"device\": \"cuda\", \"dtypes\": [\"float32\", \"float64\", \"float16\", \"bfloat16\"]}";
      o << "]}";
    }
    o << "]}";
    return o.str();
  }();
  return json;
}

}  // namespace rmsprop_ops
