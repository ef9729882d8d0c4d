"""Static-graph (PIR) training with rmsprop_ops.paddle.RMSProp: minimize() plus an LR scheduler.

Fits a small two-layer regression network on synthetic data. The optimizer appends one fused custom op
(``custom_op.rmsprop_ops_rmsprop_centered_multi_static_``) that updates every parameter of the program per
step; the program keeps ``paddle.optimizer.RMSProp``'s accumulator variables.

Run:  python examples/paddle_static_train.py [--steps 200] [--unfused]
"""

import argparse

import numpy as np
import paddle

from rmsprop_ops.paddle import RMSProp


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--unfused", action="store_true", help="one op per parameter instead of one fused op")
    args = parser.parse_args()

    paddle.enable_static()
    paddle.seed(0)  # the layers' initial weights: the same run every time
    rs = np.random.RandomState(0)
    true_w = rs.randn(16, 1).astype("float32")

    main_prog, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main_prog, startup):
        x = paddle.static.data("x", [None, 16], "float32")
        y = paddle.static.data("y", [None, 1], "float32")
        hidden = paddle.nn.functional.relu(paddle.nn.Linear(16, 32)(x))
        pred = paddle.nn.Linear(32, 1)(hidden)
        loss = paddle.mean((pred - y) ** 2)
        scheduler = paddle.optimizer.lr.CosineAnnealingDecay(learning_rate=0.01, T_max=args.steps)
        opt = RMSProp(learning_rate=scheduler, rho=0.9, momentum=0.9, centered=True, weight_decay=1e-4,
                      grad_clip=paddle.nn.ClipGradByValue(1.0), fused=not args.unfused)
        optimize_ops, params_grads = opt.minimize(loss)

    ours = [op.name() for op in main_prog.global_block().ops if op.name().startswith("custom_op.rmsprop_ops")]
    print(f"update ops in the program: {ours} for {len(params_grads)} parameters")

    exe = paddle.static.Executor(paddle.CPUPlace())
    exe.run(startup)
    for step in range(1, args.steps + 1):
        bx = rs.randn(args.batch, 16).astype("float32")
        by = (bx @ true_w + 0.01 * rs.randn(args.batch, 1)).astype("float32")
        (value,) = exe.run(main_prog, feed={"x": bx, "y": by}, fetch_list=[loss])
        scheduler.step()
        if step == 1 or step % 20 == 0:
            print(f"step {step:4d}  loss {float(value):.5f}  lr {scheduler.get_lr():.5f}")


if __name__ == "__main__":
    main()
