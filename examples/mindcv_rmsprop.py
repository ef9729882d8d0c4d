"""mindcv's EfficientNet / MnasNet RMSProp recipes with rmsprop_ops.mindspore.RMSProp, in GRAPH_MODE.

mindcv (``pip install mindcv``) builds its optimizers in ``mindcv.optim.create_optimizer``, which calls
``mindspore.nn.RMSProp`` for ``opt="rmsprop"`` and has no registry of optimizer names. ``create_optimizer``
here runs mindcv's function unchanged with ``nn.RMSProp`` resolved to ``rmsprop_ops.mindspore.RMSProp``
for the duration of the call, so every argument mindcv derives from a config (parameter groups and the
weight-decay filter, ``eps``, ``momentum``, ``loss_scale``, the learning-rate list) reaches our optimizer as
it would reach MindSpore's; the network is then trained by mindcv's ``create_trainer`` (a MindSpore
``Model`` with the recipe's loss-scale manager).

The recipes are mindcv's configs (tag v0.3.0) as its ``train.py`` turns them into ``create_optimizer`` and
``create_trainer`` arguments; a run takes the learning rates of the recipe's first steps (mindcv's own
``create_scheduler`` with the recipe's steps per epoch) on a few batches of synthetic 64x64 images.

Run:  python examples/mindcv_rmsprop.py [--recipe mnasnet] [--steps 6]
"""

import argparse
import math
from unittest import mock

import numpy as np

IMAGENET_TRAIN = 1281167

# mindcv v0.3.0 configs (rmsprop_ops.recipes has the same numbers as mnasnet_100_mindcv and
# efficientnet_b0_mindcv), as train.py maps them (its --weight_decay_filter default is "disable"; a fixed loss
# scale without drop_overflow_update also goes to the optimizer, else the optimizer gets 1.0).
RECIPES = {
    "mnasnet": dict(
        source="configs/mnasnet/mnasnet_1.0_ascend.yaml", model="mnasnet_100", devices=8, batch_size=256,
        optimizer=dict(opt="rmsprop", momentum=0.9, weight_decay=1e-5, eps=1e-3, loss_scale=256.0,
                       weight_decay_filter="disable"),
        trainer=dict(amp_level="O0", loss_scale_type="fixed", loss_scale=256.0, drop_overflow_update=False),
        scheduler=dict(scheduler="cosine_decay", lr=0.016, min_lr=1e-10, warmup_epochs=5, decay_epochs=445,
                       num_epochs=450)),
    "efficientnet": dict(
        source="configs/efficientnet/efficientnet_b0_ascend.yaml", model="efficientnet_b0", devices=8,
        batch_size=128,
        optimizer=dict(opt="rmsprop", momentum=0.9, weight_decay=1e-5, eps=1e-3, loss_scale=1.0,
                       weight_decay_filter="disable"),
        # The recipe trains in float16 (amp_level "O2") with a dynamic loss scale starting at 1.0, doubled
        # after 2000 overflow-free steps. MindSpore's Model refuses a dynamic scale on CPU: a few steps
        # without overflow run at the fixed scale 1.0, in float32.
        trainer=dict(amp_level="O0", loss_scale_type="fixed", loss_scale=1.0, drop_overflow_update=False),
        scheduler=dict(scheduler="cosine_decay", lr=0.128, min_lr=1e-10, warmup_epochs=5, decay_epochs=445,
                       num_epochs=450)),
}


def rmsprop_ops_in_mindcv(cls=None):
    """A context in which mindcv's ``create_optimizer(opt="rmsprop")`` builds ``cls`` (default
    ``rmsprop_ops.mindspore.RMSProp``) instead of ``mindspore.nn.RMSProp``. mindcv looks the class up as
    ``nn.RMSProp`` in ``mindcv.optim.optim_factory`` at each call, and that ``nn`` is ``mindspore.nn`` itself:
    inside the block, ``mindspore.nn.RMSProp`` is ours for everyone."""
    from mindcv.optim import optim_factory

    if cls is None:
        from rmsprop_ops.mindspore import RMSProp as cls
    return mock.patch.object(optim_factory.nn, "RMSProp", cls)


def create_optimizer(*args, rmsprop=None, **kwargs):
    """``mindcv.optim.create_optimizer`` building ``rmsprop`` (default ours) for ``opt="rmsprop"``."""
    from mindcv.optim import create_optimizer as mindcv_create_optimizer

    with rmsprop_ops_in_mindcv(rmsprop):
        return mindcv_create_optimizer(*args, **kwargs)


def recipe_learning_rates(recipe, steps):
    """The recipe's first ``steps`` learning rates, from mindcv's ``create_scheduler``."""
    from mindcv.scheduler import create_scheduler

    r = RECIPES[recipe]
    # Each device's shard of ImageNet (MindSpore's distributed sampler pads to equal shards), batched with
    # drop_remainder as the configs ask.
    per_epoch = math.ceil(IMAGENET_TRAIN / r["devices"]) // r["batch_size"]
    return list(create_scheduler(per_epoch, **r["scheduler"])[:steps])


def without_dropout(network):
    """Switch off the network's dropout and drop-path layers: MindSpore's CPU draws for them differ from
    one run of the same script to the next, so two runs could not be compared step by step."""
    for _, cell in network.cells_and_names():
        if hasattr(cell, "keep_prob"):  # nn.Dropout (and mindcv's subclass), mindcv's DropPath
            cell.keep_prob = 1.0
        if hasattr(cell, "p") and isinstance(cell.p, float):
            cell.p = 0.0
    return network


class _LossRecorder:
    """A MindSpore callback keeping each step's loss (a loss-scale cell returns (loss, overflow, scale))."""

    def __new__(cls):
        from mindspore.train import Callback

        class Recorder(Callback):
            def __init__(self):
                super().__init__()
                self.losses = []

            def on_train_step_end(self, run_context):
                out = run_context.original_args().net_outputs
                out = out[0] if isinstance(out, (tuple, list)) else out
                self.losses.append(float(out.asnumpy()))

        return Recorder()


def train(recipe="mnasnet", rmsprop=None, *, steps=6, batch=8, image=64, classes=8, model=None, seed=0,
          overrides=None, learning_rates=None):
    """``steps`` GRAPH_MODE steps of mindcv's ``create_model`` / ``create_loss`` / ``create_optimizer`` /
    ``create_trainer`` with the recipe, the optimizer class ``rmsprop`` standing in for ``nn.RMSProp`` (None:
    ours; ``mindspore.nn.RMSProp``: the built-in). ``model`` replaces the recipe's network (a smaller mindcv
    model); ``overrides`` updates the recipe's optimizer arguments and ``learning_rates`` replaces the
    recipe's first learning rates. Returns the losses, the trainable
    parameters before and after (``{name: ndarray}``), the optimizer's state and class name."""
    import mindspore as ms
    import mindspore.dataset as ds
    from mindcv.loss import create_loss
    from mindcv.models import create_model
    from mindcv.utils import create_trainer, get_metrics

    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    ms.set_seed(seed)
    r = RECIPES[recipe]
    network = without_dropout(create_model(model or r["model"], num_classes=classes))
    loss = create_loss("CE", label_smoothing=0.1)
    lr = recipe_learning_rates(recipe, steps) if learning_rates is None else list(learning_rates)
    optimizer = create_optimizer(network, lr=lr, rmsprop=rmsprop,
                                 **{**r["optimizer"], **(overrides or {})})
    trainer = create_trainer(network, loss, optimizer, get_metrics(classes), amp_cast_list=None, **r["trainer"])
    rs = np.random.RandomState(seed)
    labels = np.arange(steps * batch, dtype=np.int32) % classes
    # Each class gets its own mean, so there is something to learn.
    images = (rs.randn(steps * batch, 3, image, image) + 0.5 * labels[:, None, None, None] / classes)
    data = ds.NumpySlicesDataset({"image": images.astype(np.float32), "label": labels}, shuffle=False)
    initial = {p.name: p.asnumpy().copy() for p in network.trainable_params()}
    recorder = _LossRecorder()
    trainer.train(1, data.batch(batch, drop_remainder=True), callbacks=[recorder], dataset_sink_mode=False)
    state = {p.name: p.asnumpy().copy() for p in optimizer.get_parameters() if not p.name.startswith("global")}
    return {"losses": recorder.losses, "initial": initial,
            "weights": {p.name: p.asnumpy().copy() for p in network.trainable_params()},
            "state": {k: v for k, v in state.items() if k not in initial},
            "optimizer": f"{type(optimizer).__module__}.{type(optimizer).__name__}"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="mnasnet")
    parser.add_argument("--model", help="a smaller mindcv model than the recipe's, e.g. mnasnet_050")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--builtin", action="store_true", help="mindspore.nn.RMSProp instead of ours")
    args = parser.parse_args()
    rmsprop = None
    if args.builtin:
        from mindspore import nn

        rmsprop = nn.RMSProp
    result = train(args.recipe, rmsprop, steps=args.steps, model=args.model)
    print(f"{args.recipe} ({result['optimizer']}): losses " + " ".join(f"{v:.6f}" for v in result["losses"]))


if __name__ == "__main__":
    main()
