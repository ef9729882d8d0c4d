// The registry as a JSON document (rmsprop_ops_registry_json): what the Python package, the Paddle op
// generator and the MindSpore config builder read, so that none of them restates the schema.
#include <cmath>
#include <sstream>

#include "kernels.h"
#include "registry.h"
#include "rmsprop_ops/flat.h"
#include "rmsprop_ops/format.h"

namespace rmsprop_ops {
namespace {

std::string json_str(const char *s) {
  if (s == nullptr) return "null";
  std::string o = "\"";
  for (const char *c = s; *c; ++c) {
    if (*c == '"' || *c == '\\') o += '\\';
    o += *c;
  }
  return o + "\"";
}

std::string json_num(double v) { return std::isfinite(v) ? short_repr(v) : "null"; }
const char *json_bool(bool b) { return b ? "true" : "false"; }

const char *type_name(AttrType t) {
  switch (t) {
    case AttrType::kFloat: return "float";
    case AttrType::kBool: return "bool";
    case AttrType::kEnum: return "enum";
    case AttrType::kFloatList: return "float[]";
  }
  return "?";
}

const char *scope_name(Scope s) {
  switch (s) {
    case Scope::kCall: return "call";
    case Scope::kTensor: return "tensor";
    case Scope::kList: return "list";
  }
  return "?";
}

void write_attr(std::ostringstream &o, const AttrSpec &a) {
  o << "{\"name\": " << json_str(a.name) << ", \"type\": " << json_str(type_name(a.type)) << ", \"default\": ";
  if (a.type == AttrType::kBool)
    o << json_bool(a.default_value != 0);
  else if (a.type == AttrType::kEnum)
    o << json_str(a.choices[static_cast<size_t>(a.default_value)]);
  else if (a.type == AttrType::kFloatList)
    o << "[]";
  else
    o << json_num(a.default_value);
  o << ", \"min\": " << json_num(a.lo) << ", \"max\": " << json_num(a.hi)
    << ", \"min_inclusive\": " << json_bool(a.lo_inclusive) << ", \"max_inclusive\": " << json_bool(a.hi_inclusive)
    << ", \"negative_disables\": " << json_bool(a.negative_disables) << ", \"choices\": [";
  for (size_t k = 0; k < a.choices.size(); ++k) o << (k ? ", " : "") << json_str(a.choices[k]);
  o << "], \"scope\": " << json_str(scope_name(a.scope)) << ", \"c_name\": " << json_str(a.shown())
    << ", \"input\": " << json_str(a.input) << ", \"per_tensor\": " << json_str(a.per_tensor)
    << ", \"doc\": " << json_str(a.doc) << "}";
}

void write_op(std::ostringstream &o, const OpSchema &op) {
  o << "{\"name\": " << json_str(op.name) << ", \"doc\": " << json_str(op.doc)
    << ", \"centered\": " << json_bool(op.centered) << ", \"multi_tensor\": " << json_bool(op.multi)
    << ", \"inputs\": [";
  for (size_t i = 0; i < op.inputs.size(); ++i) {
    const auto &t = op.inputs[i];
    const ScalarInputSpec *s = find_scalar_input(t.name);
    o << (i ? ", " : "") << "{\"name\": " << json_str(t.name) << ", \"optional\": " << json_bool(t.optional)
      << ", \"dtype\": " << json_str(t.dtype_rule) << ", \"scalar\": " << json_bool(s != nullptr);
    if (s != nullptr)
      o << ", \"attr\": " << json_str(s->attr) << ", \"arg\": " << json_str(s->arg)
        << ", \"float_only\": " << json_bool(s->float_only);
    o << ", \"doc\": " << json_str(t.doc) << "}";
  }
  o << "], \"outputs\": [";
  for (size_t i = 0; i < op.outputs.size(); ++i) o << (i ? ", " : "") << json_str(op.outputs[i]);
  o << "], \"inplace\": {";
  for (size_t i = 0; i < op.inplace.size(); ++i)
    o << (i ? ", " : "") << json_str(op.inplace[i].first) << ": " << json_str(op.inplace[i].second);
  o << "}, \"attrs\": [";
  for (size_t i = 0; i < op.attrs.size(); ++i) {
    o << (i ? ", " : "");
    write_attr(o, *op.attrs[i]);
  }
  o << "], \"kernels\": [{\"device\": \"cpu\", \"dtypes\": [\"float32\", \"float64\", \"float16\", \"bfloat16\"]}";
  if (built_with_cuda())
    o << ", {\"device\": \"cuda\", \"dtypes\": [\"float32\", \"float64\", \"float16\", \"bfloat16\"]}";
  o << "]}";
}

void write_names(std::ostringstream &o, const std::vector<const AttrSpec *> &attrs) {
  o << "[";
  for (size_t i = 0; i < attrs.size(); ++i) o << (i ? ", " : "") << json_str(attrs[i]->name);
  o << "]";
}

}  // namespace

const std::string &registry_json() {
  static const std::string json = [] {
    std::ostringstream o;
    o << "{\"abi_version\": " << RMSPROP_OPS_ABI_VERSION << ", \"ops\": [";
    bool first = true;
    for (const auto &op : all_ops()) {
      o << (first ? "" : ", ");
      first = false;
      write_op(o, op);
    }
    // The flat-state form of the multi-tensor ops: these state inputs become one 1-D buffer each, and an
    // int[] attribute gives every tensor's offset in them (empty: packed in order, starts aligned).
    o << "], \"flat_state\": {\"align\": " << RMSPROP_OPS_FLAT_ALIGN
      << ", \"state_inputs\": [\"MeanSquare\", \"Moment\", \"MeanGrad\"], \"offsets_attr\": {\"name\": \"offsets\", "
         "\"type\": \"int[]\", \"default\": [], \"doc\": \"element offset of each Param's slice in the flat state "
         "buffers; [] packs them in order, each start aligned to "
      << RMSPROP_OPS_FLAT_ALIGN << " elements\"}}";
    o << ", \"config_layout\": {\"header\": [\"count\", \"centered\", \"flat_state\"], \"values\": ";
    write_names(o, config_values());
    o << ", \"lists\": ";
    write_names(o, config_lists());
    o << ", \"flat\": \"offsets\"}}";
    return o.str();
  }();
  return json;
}

}  // namespace rmsprop_ops
