// The op registry: one table of every op's inputs, outputs, attributes (type, default, valid range, and
// the field of the C ABI structs each one fills), in-place map and kernels. Attribute validation and the
// filler from (name, value) to the hyper-parameters are implemented here once; the C API, the pybind11
// module, the Paddle and MindSpore shims and the Python optimizers all go through them.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "rmsprop_ops/c_api.h"

namespace rmsprop_ops {

enum class AttrType { kFloat, kBool, kEnum, kFloatList };

// Where an attribute's value goes: a field of rmsprop_ops_hparams (one per call), a field of every
// rmsprop_ops_tensor_set (one value for all tensors), or one value per tensor set (a list).
enum class Scope { kCall, kTensor, kList };
enum class FieldKind { kDouble, kInt32, kScalar };

struct Field {
  FieldKind kind;
  size_t offset;  // offsetof in rmsprop_ops_hparams (kCall) or rmsprop_ops_tensor_set (kTensor, kList)
};

struct AttrSpec {
  const char *name;
  AttrType type;
  double default_value;
  double lo, hi;          // valid range (after "negative disables" is taken into account)
  bool lo_inclusive, hi_inclusive;
  bool negative_disables; // any negative value means "off" (MXNet's clip_gradient = -1)
  std::vector<const char *> choices;  // kEnum: value i means choices[i]
  const char *doc;
  Scope scope;
  Field field;
  const char *c_name;      // the C struct's (and the functional API's) name when it differs ("lr")
  const char *input;       // the scalar input that overrides it when given ("LearningRate"), or nullptr
  const char *per_tensor;  // kList: the attribute it gives per tensor ("learning_rate"), else nullptr
  bool multi_only;         // only the multi-tensor ops have it (the lists)

  const char *shown() const { return c_name != nullptr ? c_name : name; }
};

// A scalar input: a one-element tensor the kernel reads where it lives (no host synchronisation).
struct ScalarInputSpec {
  const char *name;   // "LearningRate"
  const char *attr;   // the attribute it overrides ("learning_rate"), or nullptr
  const char *arg;    // its name as an argument of the functional API and the C struct ("skip_update")
  size_t offset;      // offsetof the rmsprop_ops_scalar in rmsprop_ops_hparams
  bool float_only;    // else bool and integer dtypes too
  const char *dtype_rule;
  const char *doc;
};

struct TensorSpec {
  const char *name;
  bool optional;
  const char *dtype_rule;
  const char *doc;
};

struct OpSchema {
  const char *name;
  const char *doc;
  bool centered;
  bool multi;
  std::vector<TensorSpec> inputs;
  std::vector<const char *> outputs;
  std::vector<std::pair<const char *, const char *>> inplace;
  std::vector<const AttrSpec *> attrs;
};

const std::vector<AttrSpec> &all_attrs();
const std::vector<ScalarInputSpec> &scalar_inputs();
const std::vector<OpSchema> &all_ops();
const OpSchema *find_op(const std::string &name);
const AttrSpec *find_attr(const OpSchema &op, const std::string &name);
// An attribute by its name or C name, any op.
const AttrSpec *find_any_attr(const std::string &name);
// A scalar input by its name, its argument name, or the name / C name of the attribute it overrides.
const ScalarInputSpec *find_scalar_input(const std::string &name);

// Whether `value` is valid for the attribute (the test alone: a valid value costs no string).
bool attr_ok(const AttrSpec &spec, double value);

// Returns an empty string when `value` is valid for the attribute, else the error message (which names
// the attribute, or shown_name, and says what was expected and received). `entry`: the value is one
// tensor's (a list entry, a tensor set's field), worded "expected a finite value >= 0".
std::string check_attr_value(const AttrSpec &spec, double value, const char *shown_name = nullptr,
                             bool entry = false);

// The filler (C API: rmsprop_ops_set_attr, _set_attr_list, _set_scalar). Throw ArgError.
void set_attr(rmsprop_ops_hparams &hp, rmsprop_ops_tensor_set *sets, int64_t nsets, const std::string &name,
              double value);
void set_attr_list(rmsprop_ops_tensor_set *sets, int64_t nsets, const std::string &name, const double *values,
                   int64_t n);
void set_scalar(rmsprop_ops_hparams &hp, const std::string &name, const void *ptr, int32_t dtype);
void default_hparams(rmsprop_ops_hparams &hp);
void default_tensor_set(rmsprop_ops_tensor_set &set);

// Validates every hyper-parameter of a call against the registry. Throws ArgError.
void validate_hparams(const rmsprop_ops_hparams &hp);
// Every per-tensor attribute of set k ("lr[3]" / "weight_decay[3]" with list names). Throws ArgError.
void validate_tensor_attrs(const rmsprop_ops_tensor_set &set, int64_t k, bool list_names);
// Scalars given as host memory (a CPU call), checked like numbers. A device scalar is read by the kernel
// alone: checking it would cost a host sync.
void validate_host_scalars(const rmsprop_ops_hparams &hp);

// The float64 config layout (rmsprop_ops_config_field): the attributes with one value, then the lists.
const std::vector<const AttrSpec *> &config_values();
const std::vector<const AttrSpec *> &config_lists();

const std::string &registry_json();

struct ArgError {
  int code;
  std::string message;
};

}  // namespace rmsprop_ops
