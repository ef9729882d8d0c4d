"""Run by test_paddle_distributed.py under ``python -m paddle.distributed.launch --nproc_per_node 2``.

Each rank trains a paddle.DataParallel copy of a small model on its half of every global batch with
rmsprop_ops.paddle.RMSProp; rank 0 also trains an undistributed copy on the whole global batch. Every rank
writes its parameters to $RMSPROP_OPS_DIST_OUT/rank<k>.npz (rank 0 adds the single-process result).
"""

import os
import sys

import numpy as np
import paddle
import paddle.distributed as dist

from rmsprop_ops.paddle import RMSProp

STEPS, GLOBAL_BATCH = 12, 16


def make_model():
    paddle.seed(7)
    model = paddle.nn.Sequential(paddle.nn.Linear(5, 8), paddle.nn.Tanh(), paddle.nn.Linear(8, 2))
    rs = np.random.RandomState(3)
    for p in model.parameters():
        p.set_value(rs.uniform(-0.5, 0.5, p.shape).astype("float32"))
    return model


def make_opt(params, fused):
    sched = paddle.optimizer.lr.StepDecay(0.02, step_size=4, gamma=0.5)
    return RMSProp(sched, parameters=params, momentum=0.9, centered=True, weight_decay=0.01,
                   grad_clip=paddle.nn.ClipGradByGlobalNorm(1.0), fused=fused), sched


def main():
    fused = sys.argv[1] == "fused"
    use_fleet = len(sys.argv) > 2 and sys.argv[2] == "fleet"
    if use_fleet:
        from paddle.distributed import fleet

        fleet.init(is_collective=True)
    else:
        dist.init_parallel_env()
    rank, world = dist.get_rank(), dist.get_world_size()
    assert world == 2, world
    if use_fleet:
        model = fleet.distributed_model(make_model())
        opt, sched = make_opt(model.parameters(), fused)
        opt = fleet.distributed_optimizer(opt)
    else:
        model = paddle.DataParallel(make_model())
        opt, sched = make_opt(model.parameters(), fused)
    single = make_model() if rank == 0 else None
    opt1, sched1 = make_opt(single.parameters(), fused) if rank == 0 else (None, None)
    rs = np.random.RandomState(11)
    half = GLOBAL_BATCH // world
    for _ in range(STEPS):
        x = rs.randn(GLOBAL_BATCH, 5).astype("float32")
        y = rs.randn(GLOBAL_BATCH, 2).astype("float32")
        xs, ys = x[rank * half:(rank + 1) * half], y[rank * half:(rank + 1) * half]
        loss = ((model(paddle.to_tensor(xs)) - paddle.to_tensor(ys)) ** 2).mean()
        loss.backward()
        opt.step()
        opt.clear_grad()
        sched.step()
        if rank == 0:
            loss1 = ((single(paddle.to_tensor(x)) - paddle.to_tensor(y)) ** 2).mean()
            loss1.backward()
            opt1.step()
            opt1.clear_grad()
            sched1.step()
    out = {f"p{i}": p.numpy() for i, p in enumerate(model.parameters())}
    if rank == 0:
        out.update({f"single{i}": p.numpy() for i, p in enumerate(single.parameters())})
    np.savez(os.path.join(os.environ["RMSPROP_OPS_DIST_OUT"], f"rank{rank}.npz"), **out)


if __name__ == "__main__":
    main()
