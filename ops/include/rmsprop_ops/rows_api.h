/* rmsprop-ops: row-sparse RMSProp, the C ABI (librmsprop_ops_core.so, next to c_api.h).
 *
 * A row-sparse gradient of a table (an embedding) is a list of row indices and one row of values per
 * index; repeated indices are summed first (in the order they appear), as Paddle merges SelectedRows.
 * Three ways to apply it:
 *
 *   DENSE  every row of the table takes the full rule, absent rows with a zero gradient: the numbers of
 *          the dense update (and of Paddle's sparse RMSProp kernel). Every rule option. Cost: the table.
 *   EXACT  only the rows of the gradient are visited. Without momentum, weight decay and weight clipping
 *          an absent row's parameter does not move under the dense rule; its mean square (and mean
 *          gradient) is scaled by rho each step and its moment set to 0. A row catches those k steps up
 *          in closed form (rho^k) when it is next touched, or in rmsprop_ops_rows_catch_up. Parameters
 *          equal the dense update at every step, state after catch-up within float32 rounding.
 *   LAZY   EXACT's catch-up, with momentum too: a row absent for k steps would have moved by
 *          momentum^i * moment at each of them; it makes the k moves at once (the geometric sum) when it
 *          is next touched or caught up. Between its touches its parameter lags the dense one, so a
 *          forward pass reading it sees a different value. With lr_in_momentum = 0 the moves are scaled
 *          by the learning rate of the call that makes them.
 *
 * EXACT and LAZY need the per-row counter last_step and the table's step counter. A call at step
 * t = *step catches each touched row r up by t - last_step[r] steps, applies the gradient, sets
 * last_step[r] = t + 1 and finally *step = t + 1 (not when skip_update is set). Every row is current
 * after rmsprop_ops_rows_catch_up (last_step[r] = t for all r).
 */
#ifndef RMSPROP_OPS_ROWS_API_H_
#define RMSPROP_OPS_ROWS_API_H_

#include "rmsprop_ops/c_api.h"

#ifdef __cplusplus
extern "C" {
#endif

enum rmsprop_ops_rows_mode { RMSPROP_OPS_ROWS_DENSE = 0, RMSPROP_OPS_ROWS_EXACT = 1, RMSPROP_OPS_ROWS_LAZY = 2 };

/* One table, its state and one row-sparse gradient. param is [rows, ...]: a row is param.shape[0]'s
 * index, width = numel / rows elements. mean_square, moment, mean_grad and master_param are shaped like
 * param (moment required when momentum > 0, mean_grad when centered, master_param optional for
 * float16/bfloat16, all as in rmsprop_ops_tensor_set). last_step: int64 [rows], step: int64, one element;
 * both required for EXACT and LAZY, absent (data NULL) for DENSE. indices: int32 or int64 [n], each in
 * [0, rows); values: [n, ...] with width elements per index, the param's dtype. */
typedef struct {
  rmsprop_ops_tensor param, mean_square, moment, mean_grad, master_param;
  rmsprop_ops_tensor last_step, step;
  rmsprop_ops_tensor indices, values;
  double lr_mult;            /* multiplies the learning rate */
  double weight_decay;       /* DENSE only; EXACT and LAZY take 0 (an absent row's gradient would be wd*p) */
  int32_t weight_decay_mode; /* enum rmsprop_ops_weight_decay_mode */
  int32_t mode;              /* enum rmsprop_ops_rows_mode */
} rmsprop_ops_rows;

/* Validates everything (every index in range, every touched row's counter <= step) and then applies
 * the gradient; on error writes a message naming the argument into err and modifies nothing. hp's
 * nesterov and bias_correction must be 0 and hp->step the default (1 by value): the catch-up of skipped
 * rows does not model them, and the table's step counter is rows->step (the same for catch_up below). */
RMSPROP_OPS_API int rmsprop_ops_rows_update(const rmsprop_ops_rows *rows, const rmsprop_ops_hparams *hp,
                                            void *stream, uint32_t flags, char *err, size_t errlen);

/* EXACT / LAZY: brings rows up to step t = *step (state and, in LAZY, parameters: what the dense rule
 * would hold now) and sets their counters to t; *step is left alone. indices given: those rows (repeats
 * allowed), else every row. values is ignored. Uses hp's rho, momentum, lr and lr_in_momentum. */
RMSPROP_OPS_API int rmsprop_ops_rows_catch_up(const rmsprop_ops_rows *rows, const rmsprop_ops_hparams *hp,
                                              void *stream, uint32_t flags, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* RMSPROP_OPS_ROWS_API_H_ */
