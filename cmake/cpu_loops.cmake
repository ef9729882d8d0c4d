# The CPU kernel's loops (ops/src/cpu_loops.cpp), compiled once per instruction set with explicit vector
# widths; cpu_kernel.cpp picks one at run time for the CPU it runs on. So the library runs at full speed on
# any x86-64 machine whatever machine built it, and whatever RMSPROP_OPS_NATIVE says, which the loops
# ignore.
#
# `scalar` (vectorisation off, the compiler's default target, every coefficient read at run time: no
# per-option variants, RMSPROP_OPS_LOOPS_REFERENCE) is the reference the tests compare every other variant
# with, bit for bit. The floating-point flags are the core's (see CMakeLists.txt): no errno, no trapping,
# no contraction.
include(CheckCXXSourceCompiles)
set(rmsprop_ops_loop_variants scalar)
set(rmsprop_ops_loop_flags_scalar -fno-tree-vectorize -fno-tree-slp-vectorize)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  list(APPEND rmsprop_ops_loop_variants avx512 avx2 sse2)
  # These feature lists match the run-time checks in cpu_kernel.cpp (cpu_runs).
  set(rmsprop_ops_loop_flags_avx2 -mavx2 -mfma -mf16c -mbmi -mbmi2 -mprefer-vector-width=256)
  set(rmsprop_ops_loop_flags_avx512 -mavx2 -mfma -mf16c -mbmi -mbmi2 -mavx512f -mavx512vl -mavx512bw -mavx512dq
      -mprefer-vector-width=512)
  set(rmsprop_ops_loop_flags_sse2 -msse2)
else()
  list(APPEND rmsprop_ops_loop_variants generic)
  set(rmsprop_ops_loop_flags_generic "")
endif()

foreach(name IN LISTS rmsprop_ops_loop_variants)
  set(flags ${rmsprop_ops_loop_flags_${name}})
  string(REPLACE ";" " " CMAKE_REQUIRED_FLAGS "${flags}")
  check_cxx_source_compiles("int main() { return 0; }" rmsprop_ops_loops_${name}_supported)
  unset(CMAKE_REQUIRED_FLAGS)
  if(NOT rmsprop_ops_loops_${name}_supported)
    message(STATUS "rmsprop_ops: the compiler cannot build the ${name} CPU loops; skipped")
    continue()
  endif()
  string(TOUPPER "${name}" upper)
  string(SUBSTRING "${upper}" 0 1 first)
  string(SUBSTRING "${name}" 1 -1 rest)
  set(obj rmsprop_ops_loops_${name})
  add_library(${obj} OBJECT ops/src/cpu_loops.cpp)
  target_include_directories(${obj} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/ops/include)
  set_target_properties(${obj} PROPERTIES POSITION_INDEPENDENT_CODE ON CXX_VISIBILITY_PRESET hidden
                                          VISIBILITY_INLINES_HIDDEN ON)
  target_compile_definitions(${obj} PRIVATE RMSPROP_OPS_LOOPS_SYMBOL=kLoops${first}${rest}
                                            RMSPROP_OPS_LOOPS_LABEL="${name}")
  target_compile_options(${obj} PRIVATE -O3 -fno-math-errno -fno-trapping-math -ffp-contract=off -Wall -Wextra
                                        ${flags})
  if(RMSPROP_OPS_SANITIZE)
    target_compile_options(${obj} PRIVATE -fsanitize=address,undefined -fno-omit-frame-pointer
                                          -fno-sanitize-recover=undefined)
  endif()
  target_sources(rmsprop_ops_core PRIVATE $<TARGET_OBJECTS:${obj}>)
  if(name STREQUAL "scalar")
    target_compile_definitions(${obj} PRIVATE RMSPROP_OPS_LOOPS_REFERENCE)
  else()
    target_compile_definitions(rmsprop_ops_core PRIVATE RMSPROP_OPS_LOOPS_${upper})
  endif()
endforeach()
if(NOT rmsprop_ops_loops_scalar_supported)
  message(FATAL_ERROR "rmsprop_ops: the scalar CPU loops must build")
endif()
