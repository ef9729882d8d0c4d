# Whether (and for which GPUs) the CUDA kernels are compiled: the RMSPROP_OPS_CUDA switch.
#
#   AUTO (default)  when a CUDA compiler AND an NVIDIA GPU are present, for the architectures of the GPUs
#                   found (what `pip install .` on a GPU machine wants); otherwise CPU only. A machine with
#                   nvcc but no GPU does not pay for a CUDA build it cannot run.
#   ON              always (an error without a CUDA compiler), for every major architecture: portable
#                   wheels and CI.
#   OFF             never.
# CMAKE_CUDA_ARCHITECTURES (or $CUDAARCHS) overrides the architectures in both AUTO and ON.
#
# Sets RMSPROP_OPS_WITH_CUDA (ON/OFF), RMSPROP_OPS_CUDA_REASON (one line saying why) and, when ON, enables
# the CUDA language with CMAKE_CUDA_ARCHITECTURES chosen as above.

set(RMSPROP_OPS_CUDA "AUTO" CACHE STRING
    "Compile the CUDA kernels: AUTO (a CUDA compiler and an NVIDIA GPU are present), ON, OFF")
set_property(CACHE RMSPROP_OPS_CUDA PROPERTY STRINGS AUTO ON OFF)

string(TOUPPER "${RMSPROP_OPS_CUDA}" _cuda_mode)
if(_cuda_mode MATCHES "^(1|ON|YES|TRUE|Y)$")
  set(_cuda_mode ON)
elseif(_cuda_mode MATCHES "^(0|OFF|NO|FALSE|N)$")
  set(_cuda_mode OFF)
elseif(NOT _cuda_mode STREQUAL "AUTO")
  message(FATAL_ERROR "RMSPROP_OPS_CUDA: expected AUTO, ON or OFF, got '${RMSPROP_OPS_CUDA}'")
endif()

# The compute capabilities of the GPUs the driver reports ("90;80"), "unknown" when a GPU is visible but
# its capability cannot be queried (an old nvidia-smi), or "" when there is none.
function(rmsprop_ops_detect_gpus out_var)
  set(caps "")
  find_program(_nvidia_smi nvidia-smi NO_CACHE)
  if(_nvidia_smi)
    execute_process(COMMAND "${_nvidia_smi}" --query-gpu=compute_cap --format=csv,noheader
                    RESULT_VARIABLE rc OUTPUT_VARIABLE text ERROR_QUIET TIMEOUT 30)
    if(rc EQUAL 0)
      string(REGEX MATCHALL "[0-9]+\\.[0-9]+" found "${text}")
      foreach(cap IN LISTS found)
        string(REPLACE "." "" cap "${cap}")
        list(APPEND caps "${cap}")
      endforeach()
    endif()
    if(NOT caps)
      execute_process(COMMAND "${_nvidia_smi}" -L RESULT_VARIABLE rc OUTPUT_VARIABLE text ERROR_QUIET TIMEOUT 30)
      if(rc EQUAL 0 AND text MATCHES "GPU [0-9]+:")
        set(caps unknown)
      endif()
    endif()
  endif()
  if(NOT caps)
    file(GLOB gpus /proc/driver/nvidia/gpus/*)
    if(gpus)
      set(caps unknown)
    endif()
  endif()
  list(REMOVE_DUPLICATES caps)
  set(${out_var} "${caps}" PARENT_SCOPE)
endfunction()

# Detected capabilities -> architectures this nvcc can build: a GPU newer than the compiler gets the newest
# PTX (the driver compiles it forward); one older than the compiler supports is dropped.
function(rmsprop_ops_clamp_archs caps out_var)
  execute_process(COMMAND "${CMAKE_CUDA_COMPILER}" --list-gpu-arch
                  RESULT_VARIABLE rc OUTPUT_VARIABLE text ERROR_QUIET TIMEOUT 60)
  string(REGEX MATCHALL "compute_[0-9]+" supported "${text}")
  list(TRANSFORM supported REPLACE "compute_" "")
  if(NOT rc EQUAL 0 OR NOT supported)
    set(${out_var} "${caps}" PARENT_SCOPE)
    return()
  endif()
  list(SORT supported COMPARE NATURAL)
  list(GET supported 0 lowest)
  list(GET supported -1 highest)
  set(archs "")
  foreach(cap IN LISTS caps)
    if(cap IN_LIST supported)
      list(APPEND archs "${cap}")
    elseif(cap GREATER highest)
      list(APPEND archs "${highest}")
    endif()
  endforeach()
  list(REMOVE_DUPLICATES archs)
  set(${out_var} "${archs}" PARENT_SCOPE)
endfunction()

set(RMSPROP_OPS_WITH_CUDA OFF)
set(_cuda_archs "")
if(_cuda_mode STREQUAL "OFF")
  set(RMSPROP_OPS_CUDA_REASON "RMSPROP_OPS_CUDA=OFF")
else()
  include(CheckLanguage)
  check_language(CUDA)
  if(NOT CMAKE_CUDA_COMPILER)
    if(_cuda_mode STREQUAL "ON")
      message(FATAL_ERROR "RMSPROP_OPS_CUDA=ON but no CUDA compiler was found (put nvcc on PATH or set CUDACXX)")
    endif()
    set(RMSPROP_OPS_CUDA_REASON "RMSPROP_OPS_CUDA=AUTO and no CUDA compiler was found")
  elseif(_cuda_mode STREQUAL "ON")
    set(RMSPROP_OPS_WITH_CUDA ON)
    set(RMSPROP_OPS_CUDA_REASON "RMSPROP_OPS_CUDA=ON")
    set(_cuda_archs all-major)
  else()
    rmsprop_ops_detect_gpus(_gpus)
    if(NOT _gpus)
      set(RMSPROP_OPS_CUDA_REASON
          "RMSPROP_OPS_CUDA=AUTO found a CUDA compiler but no NVIDIA GPU; RMSPROP_OPS_CUDA=ON builds the kernels anyway")
    elseif(_gpus STREQUAL "unknown")
      set(RMSPROP_OPS_WITH_CUDA ON)
      set(RMSPROP_OPS_CUDA_REASON "RMSPROP_OPS_CUDA=AUTO found a CUDA compiler and a GPU of unknown architecture")
      set(_cuda_archs all-major)
    else()
      list(JOIN _gpus ", " _gpus_text)
      string(REGEX REPLACE "([0-9])(, |$)" ".\\1\\2" _gpus_text "${_gpus_text}")
      rmsprop_ops_clamp_archs("${_gpus}" _cuda_archs)
      if(_cuda_archs)
        set(RMSPROP_OPS_WITH_CUDA ON)
        set(RMSPROP_OPS_CUDA_REASON "RMSPROP_OPS_CUDA=AUTO found a CUDA compiler and GPUs of compute capability ${_gpus_text}")
      else()
        set(RMSPROP_OPS_CUDA_REASON
            "RMSPROP_OPS_CUDA=AUTO found GPUs of compute capability ${_gpus_text}, older than this CUDA compiler supports")
      endif()
    endif()
  endif()
endif()

if(RMSPROP_OPS_WITH_CUDA)
  # A user's choice (-DCMAKE_CUDA_ARCHITECTURES=..., $CUDAARCHS) wins. The default is set as a normal
  # variable so that a reconfigure on another machine detects again instead of reusing a cached list.
  # CMake itself reads $CUDAARCHS only when it first finds the compiler, not on a reconfigure.
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES AND DEFINED ENV{CUDAARCHS})
    set(CMAKE_CUDA_ARCHITECTURES $ENV{CUDAARCHS})
  elseif(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES ${_cuda_archs})
  endif()
  enable_language(CUDA)
  list(JOIN CMAKE_CUDA_ARCHITECTURES ", " _archs_text)
  set(RMSPROP_OPS_CUDA_REASON "${RMSPROP_OPS_CUDA_REASON}; architectures ${_archs_text}")
endif()
message(STATUS "rmsprop_ops: CUDA kernels ${RMSPROP_OPS_WITH_CUDA} (${RMSPROP_OPS_CUDA_REASON})")
