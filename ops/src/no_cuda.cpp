// Stand-ins linked when the library is built without CUDA.
#include <stdexcept>

#include "kernels.h"
#include "rows.h"

namespace rmsprop_ops {

void run_cuda(const Launch &, void *) { throw std::runtime_error("rmsprop_ops was built without CUDA"); }
bool cuda_available() { return false; }
bool built_with_cuda() { return false; }
void run_rows_cuda(const RowsLaunch &, void *) { throw std::runtime_error("rmsprop_ops was built without CUDA"); }

}  // namespace rmsprop_ops
