// The op registry: one table of every op's inputs, outputs, attributes (type, default, valid range),
// in-place map and kernels. Attribute validation is implemented here once; the C API, the Python
// optimizers and the Paddle/MindSpore registrations all go through it.
#pragma once

#include <string>
#include <vector>

#include "rmsprop_ops/c_api.h"

namespace rmsprop_ops {

enum class AttrType { kFloat, kBool, kEnum, kFloatList };

struct AttrSpec {
  const char *name;
  AttrType type;
  double default_value;
  double lo, hi;          // valid range (after "negative disables" is taken into account)
  bool lo_inclusive, hi_inclusive;
  bool negative_disables; // any negative value means "off" (MXNet's clip_gradient = -1)
  std::vector<const char *> choices;  // kEnum: value i means choices[i]
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
  std::vector<AttrSpec> attrs;
};

const std::vector<OpSchema> &all_ops();
const OpSchema *find_op(const std::string &name);
const AttrSpec *find_attr(const OpSchema &op, const std::string &name);

// Returns an empty string when `value` is valid for the attribute, else the error message (which names
// the attribute and says what was expected and received).
std::string check_attr_value(const AttrSpec &spec, double value, const char *shown_name = nullptr);

// Validates every hyper-parameter of a call against the schema of op (rmsprop or rmsprop_centered).
// Throws ArgError.
void validate_hparams(const rmsprop_ops_hparams &hp);
// lr and rescale_grad given as host memory (a CPU call), checked like numbers. A device scalar is read by
// the kernel alone: checking it would cost a host sync.
void validate_host_scalars(const rmsprop_ops_hparams &hp);

const std::string &registry_json();

struct ArgError {
  int code;
  std::string message;
};

}  // namespace rmsprop_ops
