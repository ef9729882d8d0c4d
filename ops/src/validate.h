// Validation of a call (validate.cpp): everything that can be wrong with it, checked before any kernel
// runs. Throws ArgError (registry.h) naming the argument; returns the launch the kernels take.
#pragma once

#include <cstdint>

#include "kernels.h"
#include "rmsprop_ops/c_api.h"

namespace rmsprop_ops {

Launch validate(const rmsprop_ops_tensor_set *sets, int64_t nsets, const rmsprop_ops_hparams *hp, uint32_t flags);

}  // namespace rmsprop_ops
