/* rmsprop-ops: the framework-free C ABI of the core library (librmsprop_ops_core.so).
 *
 * Every front end (the pybind11 module, the Paddle custom ops, the MindSpore aot kernel) calls these
 * functions. The boundary is plain C so that a consumer built with another libstdc++ ABI flag (MindSpore
 * builds with _GLIBCXX_USE_CXX11_ABI=0) can link against the same library: no std:: type crosses it.
 *
 * One call updates a list of tensor sets (param, grad and state buffers of one parameter each) with one set
 * of hyper-parameters; a single-tensor update is a list of one. The call validates everything first and
 * touches nothing when it fails.
 */
#ifndef RMSPROP_OPS_C_API_H_
#define RMSPROP_OPS_C_API_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RMSPROP_OPS_ABI_VERSION 3

#if defined(_WIN32)
#define RMSPROP_OPS_API __declspec(dllexport)
#else
#define RMSPROP_OPS_API __attribute__((visibility("default")))
#endif

/* Element types. Params may be any floating type; state buffers hold the math type of the param
 * (float32 for float16/bfloat16/float32 params, float64 for float64 params). */
enum rmsprop_ops_dtype {
  RMSPROP_OPS_FLOAT32 = 0,
  RMSPROP_OPS_FLOAT64 = 1,
  RMSPROP_OPS_FLOAT16 = 2,
  RMSPROP_OPS_BFLOAT16 = 3,
  RMSPROP_OPS_BOOL = 4,    /* only for the skip_update scalar */
  RMSPROP_OPS_INT32 = 5,   /* never valid for a tensor; named so errors can say what was received */
  RMSPROP_OPS_INT64 = 6,
  RMSPROP_OPS_UNKNOWN = 99
};

enum rmsprop_ops_device { RMSPROP_OPS_CPU = 0, RMSPROP_OPS_CUDA = 1 };

/* Return codes; front ends map them to Python exception types. */
enum rmsprop_ops_status {
  RMSPROP_OPS_OK = 0,
  RMSPROP_OPS_TYPE_ERROR = 1,
  RMSPROP_OPS_VALUE_ERROR = 2,
  RMSPROP_OPS_RUNTIME_ERROR = 3,
  RMSPROP_OPS_NOT_IMPLEMENTED = 4
};

enum rmsprop_ops_weight_decay_mode {
  RMSPROP_OPS_WD_L2 = 0,        /* coupled: g += wd * p */
  RMSPROP_OPS_WD_L1 = 1,        /* coupled: g += wd * sign(p) */
  RMSPROP_OPS_WD_DECOUPLED = 2  /* p -= lr * wd * p, before the update (Keras, AdamW style) */
};

/* A dense, C-contiguous tensor. data == NULL means "absent" (optional inputs). shape may be NULL, in
 * which case only numel is compared between the members of a set. */
typedef struct {
  void *data;
  int64_t numel;
  const int64_t *shape;
  int32_t ndim;
  int32_t dtype;     /* enum rmsprop_ops_dtype */
  int32_t writable;  /* 0 for read-only memory: rejected where the op writes */
  int32_t device;    /* enum rmsprop_ops_device */
} rmsprop_ops_tensor;

/* One parameter and its state. moment is required when momentum > 0 and allowed (and then updated)
 * when momentum == 0; mean_grad is required when centered; master_param is an optional float32 copy of
 * a float16/bfloat16 param that the math reads and writes. */
typedef struct {
  rmsprop_ops_tensor param, grad, mean_square, moment, mean_grad, master_param;
  double lr_mult;            /* multiplies the call's learning rate (parameter groups, MXNet lr_mult) */
  double weight_decay;       /* this parameter's decay coefficient, >= 0 */
  int32_t weight_decay_mode; /* enum rmsprop_ops_weight_decay_mode */
} rmsprop_ops_tensor_set;

/* A scalar given by value or by pointer to one element of `dtype` on the op's device (a learning-rate
 * tensor, a found-inf flag): read by the kernel itself, so no host synchronisation happens. On the CPU,
 * lr and rescale_grad given by pointer are range-checked like values before anything is written. */
typedef struct {
  double value;
  const void *ptr;
  int32_t dtype;
} rmsprop_ops_scalar;

typedef struct {
  rmsprop_ops_scalar lr;            /* >= 0, finite */
  rmsprop_ops_scalar rescale_grad;  /* multiplies the gradient first (inverse loss scale), finite */
  rmsprop_ops_scalar skip_update;   /* nonzero: the whole call is a no-op */
  double rho;                       /* in [0, 1] */
  double epsilon;                   /* > 0 */
  double momentum;                  /* >= 0 */
  double clip_gradient;             /* clip g to [-c, c]; negative disables */
  double clip_weights;              /* clip p to [-c, c] after the update; negative disables */
  int32_t centered;                 /* Graves: divide by sqrt(ms - mg^2) */
  int32_t eps_in_sqrt;              /* 1: sqrt(v + eps) (Paddle, MindSpore, Keras, TF); 0: sqrt(v) + eps */
  int32_t lr_in_momentum;           /* 1: mom = m*mom + lr*g/d, p -= mom; 0: mom = m*mom + g/d, p -= lr*mom */
  int32_t clip_after_weight_decay;  /* 1: clip(g + wd*p) (MXNet); 0: clip(g) + wd*p (Paddle) */
  rmsprop_ops_scalar step;          /* this update's number, counted from 1 (>= 1): for bias_correction */
  int32_t nesterov;                 /* Nesterov momentum: p -= (upd + momentum*mom) (optax trace) */
  int32_t bias_correction;          /* divide ms (and mg) by 1 - rho^step before use (optax) */
  int32_t maximize;                 /* ascend: the gradient is negated first (torch) */
} rmsprop_ops_hparams;

/* Flags for rmsprop_ops_update / rmsprop_ops_check. */
#define RMSPROP_OPS_FLAG_LIST_NAMES 1u  /* name arguments "params[3]" rather than "param" in errors */
#define RMSPROP_OPS_FLAG_CHECK_ONLY 2u  /* validate, run nothing */
/* Benchmarks only: instead of the rule, stream through the same buffers with one add per element (the
 * memory roofline of this update). float32 CPU sets only. */
#define RMSPROP_OPS_FLAG_BANDWIDTH_PROBE 4u

RMSPROP_OPS_API int rmsprop_ops_abi_version(void);

/* Fills *hp with the registry defaults (lr 0.01, rho 0.9, epsilon 1e-6, ...), every scalar by value. */
RMSPROP_OPS_API void rmsprop_ops_default_hparams(rmsprop_ops_hparams *hp);

/* Validates every tensor and hyper-parameter, then (unless FLAG_CHECK_ONLY) updates all sets in one
 * parallel region (CPU) or one launch per chunk batch (CUDA, on `stream`, a cudaStream_t; NULL is the
 * default stream). Returns an rmsprop_ops_status; on error writes a message naming the argument into
 * err (always NUL-terminated when errlen > 0) and modifies nothing. */
RMSPROP_OPS_API int rmsprop_ops_update(const rmsprop_ops_tensor_set *sets, int64_t nsets,
                                       const rmsprop_ops_hparams *hp, void *stream, uint32_t flags,
                                       char *err, size_t errlen);

/* The op registry as a JSON document: {"abi_version", "ops": [{"name", "doc", "inputs", "outputs",
 * "attrs", "inplace", "kernels"}...], "flat_state", "config_layout"}. The string is owned by the library. */
RMSPROP_OPS_API const char *rmsprop_ops_registry_json(void);

/* Validates one attribute value against its registry spec (range, finiteness). */
RMSPROP_OPS_API int rmsprop_ops_check_attr(const char *op, const char *attr, double value, char *err,
                                           size_t errlen);

/* The one filler from (name, value) to a call's arguments, shared by every front end, so that an attribute
 * added to the registry reaches them all without being named in any. Each checks the value against the
 * registry and returns an rmsprop_ops_status (message in err, nothing written on error).
 *
 * rmsprop_ops_set_attr: a registry attribute by its name or its C name ("learning_rate" or "lr", "rho",
 *   "eps_in_sqrt" as 0/1, "weight_decay_mode" as its choice's index), written into *hp, or into every set
 *   for a per-tensor attribute (weight_decay); also a scalar input's value by its argument name
 *   ("skip_update").
 * rmsprop_ops_set_attr_list: one value per set (n == nsets; n == 0 leaves the sets as they are) of a
 *   per-tensor list attribute ("lr_mults", "weight_decays") or of the attribute it refines ("lr",
 *   "weight_decay"); messages name entries by the value they set ("lr[k]", "weight_decay[k]").
 * rmsprop_ops_set_scalar: a scalar input given as memory (one element of `dtype` on the op's device, read by
 *   the kernel) by its input name ("LearningRate", "GradScale", "SkipUpdate"), the attribute it overrides
 *   ("learning_rate", "lr") or its argument name ("skip_update"). */
RMSPROP_OPS_API int rmsprop_ops_set_attr(rmsprop_ops_hparams *hp, rmsprop_ops_tensor_set *sets, int64_t nsets,
                                         const char *name, double value, char *err, size_t errlen);
RMSPROP_OPS_API int rmsprop_ops_set_attr_list(rmsprop_ops_tensor_set *sets, int64_t nsets, const char *name,
                                              const double *values, int64_t n, char *err, size_t errlen);
RMSPROP_OPS_API int rmsprop_ops_set_scalar(rmsprop_ops_hparams *hp, const char *name, const void *ptr, int32_t dtype,
                                           char *err, size_t errlen);

/* Clears *set and gives its per-tensor attributes their registry defaults (lr_mult 1, weight_decay 0, ...). */
RMSPROP_OPS_API void rmsprop_ops_default_tensor_set(rmsprop_ops_tensor_set *set);

/* The layout of a call's hyper-parameters as one float64 vector (the MindSpore op's Config input), from the
 * registry: RMSPROP_OPS_CONFIG_HEADER values (tensor count, centered, flat state), then one value per name of
 * section RMSPROP_OPS_CONFIG_VALUES, then n values per name of section RMSPROP_OPS_CONFIG_LISTS, then with
 * flat state n element offsets. Returns the name of entry i of a section, NULL past its end. */
#define RMSPROP_OPS_CONFIG_HEADER 3
enum rmsprop_ops_config_section { RMSPROP_OPS_CONFIG_VALUES = 0, RMSPROP_OPS_CONFIG_LISTS = 1 };
RMSPROP_OPS_API const char *rmsprop_ops_config_field(int32_t section, int32_t i);

/* Counters of the update calls this process made through the one core library, whichever front end
 * made them (pybind11, the Paddle ops, the MindSpore kernel): successful rmsprop_ops_update calls that
 * reached a kernel (nsets > 0; a call skipped by skip_update counts: the flag is read by the kernel), the
 * tensor sets and elements they covered, per device (index enum rmsprop_ops_device). Relaxed atomics,
 * added once per call. */
typedef struct {
  int64_t calls;
  int64_t tensor_sets;
  int64_t elements;
} rmsprop_ops_device_stats;
typedef struct {
  rmsprop_ops_device_stats device[2];
} rmsprop_ops_stats;
RMSPROP_OPS_API void rmsprop_ops_op_stats(rmsprop_ops_stats *out);
RMSPROP_OPS_API void rmsprop_ops_reset_op_stats(void);

RMSPROP_OPS_API int rmsprop_ops_built_with_cuda(void);
RMSPROP_OPS_API int rmsprop_ops_cuda_available(void);
/* Threads of the CPU kernel, at most RMSPROP_OPS_MAX_THREADS (a larger n is capped); n < 1 restores the
 * default (the CPUs this process may run on, or $RMSPROP_OPS_NUM_THREADS). */
#define RMSPROP_OPS_MAX_THREADS 1024
RMSPROP_OPS_API void rmsprop_ops_set_num_threads(int n);
RMSPROP_OPS_API int rmsprop_ops_get_num_threads(void);

/* The static partition the CPU kernel uses: thread `tid` of `nthreads` updates flat elements
 * [*begin, *end) of `total`, boundaries aligned to `align` elements. Exported so the 64-bit index
 * arithmetic can be tested at sizes that cannot be allocated. */
RMSPROP_OPS_API void rmsprop_ops_partition(int64_t total, int32_t nthreads, int32_t tid, int64_t align,
                                           int64_t *begin, int64_t *end);

/* Elements per CUDA block for a call updating `nsets` sets totalling `total` elements on a device with
 * `sm_count` multiprocessors (0: unknown, the largest chunk): each launch's grid is sized so every SM
 * gets work. */
RMSPROP_OPS_API int64_t rmsprop_ops_cuda_chunk(int64_t total, int64_t nsets, int32_t sm_count);

/* Most sets and most blocks in one launch of the CUDA kernel in this build (more where nvcc and every
 * target architecture allow 32 KB of kernel parameters: CUDA 12.1+, Volta and newer). */
RMSPROP_OPS_API void rmsprop_ops_cuda_launch_limits(int32_t *max_sets, int32_t *max_blocks);

/* The CUDA kernel's launch plan for tensors of the given sizes on a device with `sm_count`
 * multiprocessors (pure host arithmetic, available in every build, for tests of the 64-bit chunk
 * arithmetic). Writes six values per launch into out (while room remains: max_launches launches): sets
 * in the launch, blocks in the launch, then (set, chunk) of its first block and (set, chunk) of its last.
 * Returns the number of launches. */
RMSPROP_OPS_API int64_t rmsprop_ops_cuda_launch_plan(const int64_t *numels, int64_t nsets, int32_t sm_count,
                                                     int64_t *out, int64_t max_launches);

#ifdef __cplusplus
}
#endif

#endif /* RMSPROP_OPS_C_API_H_ */
