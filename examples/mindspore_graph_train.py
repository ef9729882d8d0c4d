"""Train a small regressor in MindSpore GRAPH_MODE with rmsprop_ops' RMSProp and a learning-rate schedule.

Run:  python examples/mindspore_graph_train.py [--steps-per-epoch 20] [--epochs 5]

The optimizer is a drop-in for mindspore.nn.RMSProp; every step updates all parameters with one launch of
the rmsprop_ops custom op (the kernel is compiled on first use, about a second, then cached).
"""

import argparse

import numpy as np

import mindspore as ms
import mindspore.dataset as ds
from mindspore import nn
from mindspore.train import Callback, LossMonitor, Model

from rmsprop_ops.mindspore import RMSProp, kernel_stats


class MLP(nn.Cell):
    def __init__(self):
        super().__init__()
        self.body = nn.SequentialCell(nn.Dense(8, 32), nn.Tanh(), nn.Dense(32, 32), nn.Tanh(), nn.Dense(32, 1))

    def construct(self, x):
        return self.body(x)


class LrPrinter(Callback):
    """Prints the scheduled learning rate and the kernel's launch count at the end of every epoch."""

    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule

    def on_train_epoch_end(self, run_context):
        cb = run_context.original_args()
        step = ms.Tensor(cb.cur_step_num, ms.int32)
        lr = float(self.schedule(step).asnumpy())
        print(f"epoch {cb.cur_epoch_num}: lr {lr:.5f}, rmsprop_ops launches so far {kernel_stats()['launches']}")


TRUE_W = np.random.default_rng(0).standard_normal((8, 1)).astype(np.float32)


def dataset(n, batch, seed):
    """y = sin(x . w) + noise, with one fixed w for the train and the test set."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8)).astype(np.float32)
    y = (np.sin(x @ TRUE_W) + 0.05 * rng.standard_normal((n, 1))).astype(np.float32)
    return ds.NumpySlicesDataset({"x": x, "y": y}, shuffle=False).batch(batch)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps-per-epoch", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()

    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    ms.set_seed(0)
    net = MLP()
    total = args.epochs * args.steps_per_epoch
    schedule = nn.CosineDecayLR(min_lr=1e-4, max_lr=2e-2, decay_steps=total)
    opt = RMSProp(net.trainable_params(), learning_rate=schedule, momentum=0.9, centered=True, weight_decay=1e-4)
    model = Model(net, loss_fn=nn.MSELoss(), optimizer=opt, metrics={"mse": nn.MSE()})
    print(opt)  # hyper-parameters, convention, kernel, launches per step, state layout

    train = dataset(args.steps_per_epoch * args.batch, args.batch, seed=1)
    test = dataset(256, 256, seed=2)
    print("before training:", model.eval(test, dataset_sink_mode=False))
    model.train(args.epochs, train, callbacks=[LossMonitor(args.steps_per_epoch), LrPrinter(schedule)],
                dataset_sink_mode=False)
    print("after training:", model.eval(test, dataset_sink_mode=False))
    print(f"optimizer steps: {int(opt.global_step.asnumpy()[0])}, kernel launches: {kernel_stats()['launches']}")


if __name__ == "__main__":
    main()
