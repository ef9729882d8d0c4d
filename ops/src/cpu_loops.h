// Interface between the CPU kernel's driver (cpu_kernel.cpp: validation is done, the work is partitioned
// and handed to threads) and its loops (cpu_loops.cpp), which are compiled once per instruction set
// (cmake/cpu_loops.cmake) and picked at run time. Plain data and function pointers only: the loop objects are
// built with different -m flags, so nothing may be shared with them through inline functions or
// templates with vague linkage (the linker would keep one copy, perhaps the AVX-512 one, for every caller).
#pragma once

#include <cstdint>

namespace rmsprop_ops {

// One call's work: sets of one param dtype and one combination of state buffers, in the order of the
// call. The flat element space of all sets is [0, offsets[nsets]); set k covers [offsets[k], offsets[k+1]).
struct CpuJob {
  int32_t param_dtype;  // enum rmsprop_ops_dtype; float32 for the bandwidth probe
  bool centered;        // the centered rule; for the probe: mean_grad buffers present
  bool momentum;        // moment buffers present
  bool master;          // master weights present (16-bit params only)
  const void *ptrs;     // SetPtrs<P>[nsets], P the param storage type
  const void *coeffs;   // Coeffs<math_t<P>>[nsets] (unused by the probe)
  const int64_t *offsets;
  int64_t nsets;
  int64_t prefetch_bytes;  // software prefetch distance; 0: none (cpu_loops.cpp)
};

// The loops of one instruction set. Each updates the flat elements [lo, hi) of a job, set by set, on the
// calling thread.
struct CpuLoops {
  const char *name;
  void (*update)(const CpuJob &job, int64_t lo, int64_t hi);
  // Reads grad and read-modify-writes every other buffer of float32 sets with one add per element: the
  // memory traffic of the update without its arithmetic.
  void (*probe)(const CpuJob &job, int64_t lo, int64_t hi);
};

// Defined by the loop objects this build has (RMSPROP_OPS_LOOPS_<NAME> tells which): `scalar` is the
// rule one element at a time (vectorisation off), the reference the others must match bit for bit.
extern const CpuLoops kLoopsScalar;
#ifdef RMSPROP_OPS_LOOPS_AVX512
extern const CpuLoops kLoopsAvx512;
#endif
#ifdef RMSPROP_OPS_LOOPS_AVX2
extern const CpuLoops kLoopsAvx2;
#endif
#ifdef RMSPROP_OPS_LOOPS_SSE2
extern const CpuLoops kLoopsSse2;
#endif
#ifdef RMSPROP_OPS_LOOPS_GENERIC
extern const CpuLoops kLoopsGeneric;
#endif

}  // namespace rmsprop_ops
