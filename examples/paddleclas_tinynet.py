"""PaddleClas's TinyNet recipe trained by PaddleClas's own code with rmsprop_ops.paddle.RMSProp.

PaddleClas builds its optimizer from the config's ``Optimizer.name``, looked up in the module
``ppcls.optimizer.optimizer`` (its documented way to add an optimizer is a class there plus that name in the
config). ``register()`` adds ``RMSPropOps`` to that module at run time, so a config only changes ``name:
RMSProp`` to ``name: RMSPropOps``; every other key of PaddleClas's RMSProp section (momentum, rho, epsilon,
regularizer, ``one_dim_param_no_weight_decay``, ``no_weight_decay_name``, ``clip_norm``, the lr schedule)
means what it means there, and ``multi_precision`` is honoured (PaddleClas's own RMSProp wrapper drops it:
``paddle.optimizer.RMSProp`` has no such argument).

PaddleClas's training code is not on the package index (the ``paddleclas`` wheel ships the model zoo only):
point ``--paddleclas-root`` (or ``PADDLECLAS_ROOT``) at a checkout of github.com/PaddlePaddle/PaddleClas and
install its requirements. The run uses the checkout's ``ppcls/configs/ImageNet/TinyNet/TinyNet_E.yaml``
as it is except for what a CPU smoke run needs: synthetic images, CPU, a few steps, no evaluation, and the
learning rates of the recipe's first steps (see ``tinynet_config``).

Dynamic mode (``--mode dynamic``) runs PaddleClas's ``Engine(config).train()``, EMA included, as
``tools/train.py`` does. Static mode (``--mode static``) builds the program with PaddleClas's
``ppcls.static.program.build`` (its model, loss, ``build_optimizer`` and ``minimize``) and feeds it as
``program.run`` does; PaddleClas's static trainer itself does not run with Paddle 3 (docs/clients.md).

Run:  python examples/paddleclas_tinynet.py --paddleclas-root ~/PaddleClas [--mode static] [--steps 6]
"""

import argparse
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

CONFIG = os.path.join("ppcls", "configs", "ImageNet", "TinyNet", "TinyNet_E.yaml")
# The recipe's steps per epoch: ImageNet's 1,281,167 training images on 4 GPUs x 128 (its batch size).
RECIPE_STEPS_PER_EPOCH = math.ceil(math.ceil(1281167 / 4) / 128)
NAMES = {"ours": "RMSPropOps", "builtin": "RMSProp"}


class RMSPropOps:
    """PaddleClas's optimizer protocol (``__init__`` from the config, ``__call__(model_list)`` returns the
    optimizer) building ``rmsprop_ops.paddle.RMSProp`` with PaddleClas's RMSProp arguments and grouping:
    parameters named by ``no_weight_decay_name`` (substrings, space-separated) and, with
    ``one_dim_param_no_weight_decay``, 1-D parameters go to a group with ``weight_decay`` 0. Extra keys
    (``fused``, ``flat_state``, ...) go to our optimizer."""

    def __init__(self, learning_rate, momentum=0.0, rho=0.95, epsilon=1e-6, weight_decay=None, grad_clip=None,
                 multi_precision=False, no_weight_decay_name=None, one_dim_param_no_weight_decay=False, **extra):
        self.learning_rate = learning_rate
        self.hyper = dict(momentum=momentum, rho=rho, epsilon=epsilon, weight_decay=weight_decay,
                          grad_clip=grad_clip, multi_precision=multi_precision, **extra)
        self.no_weight_decay_names = no_weight_decay_name.split() if no_weight_decay_name else []
        self.one_dim_param_no_weight_decay = one_dim_param_no_weight_decay

    def _excluded(self, name, param):
        return any(part in name for part in self.no_weight_decay_names) or (
            self.one_dim_param_no_weight_decay and len(param.shape) == 1)

    def __call__(self, model_list):
        from rmsprop_ops.paddle import RMSProp

        parameters = None  # a static program: every trainable parameter, PaddleClas's behaviour too
        if model_list:
            decay, no_decay = [], []
            for layer in model_list:
                for name, param in layer.named_parameters():
                    (no_decay if self._excluded(name, param) else decay).append(param)
            parameters = decay
            if no_decay:
                parameters = [{"params": decay, "weight_decay": self.hyper["weight_decay"]},
                              {"params": no_decay, "weight_decay": 0.0}]
        return RMSProp(learning_rate=self.learning_rate, parameters=parameters, **self.hyper)


def register():
    """Make ``name: RMSPropOps`` available to PaddleClas's ``build_optimizer``."""
    import ppcls.optimizer.optimizer as ppcls_optimizers

    ppcls_optimizers.RMSPropOps = RMSPropOps


def write_images(root, count, size, classes, seed=0):
    """``count`` random RGB PNGs and an ImageNet-style list file (``relative/path label``)."""
    from PIL import Image

    rs = np.random.RandomState(seed)
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    lines = []
    for i in range(count):
        label = i % classes
        # Each class gets its own mean colour, so there is something to learn.
        pixels = rs.randint(0, 128, (size, size, 3)) + 16 * ((np.arange(3) + 1) * label % 8)
        Image.fromarray(pixels.astype(np.uint8)).save(os.path.join(root, "images", f"{i}.png"))
        lines.append(f"images/{i}.png {label}\n")
    with open(os.path.join(root, "train_list.txt"), "w") as f:
        f.writelines(lines)
    return os.path.join(root, "train_list.txt")


def tinynet_config(paddleclas_root, data_root, output_dir, *, optimizer="RMSProp", steps=6, batch=4,
                   image=32, classes=8, seed=0, overrides=()):
    """PaddleClas's TinyNet_E config (plus ``overrides``, as ``tools/train.py -o`` takes them) with its
    Optimizer and EMA sections as they are, adapted to a CPU smoke run: ``steps`` batches of synthetic
    ``image`` x ``image`` images in one epoch, no evaluation."""
    from ppcls.utils.config import get_config

    config = get_config(os.path.join(paddleclas_root, CONFIG), overrides=list(overrides), show=False)
    config.profiler_options = None  # what tools/train.py sets without --profiler_options
    config["Global"].update(device="cpu", epochs=1, seed=seed, eval_during_train=False, output_dir=output_dir,
                            save_interval=1, print_batch_step=1, image_shape=[3, image, image])
    config["Arch"]["class_num"] = classes
    config["Optimizer"]["name"] = optimizer
    # One epoch of `steps` steps would clamp the recipe's 3-epoch warm-up to those steps and reach the peak
    # rate at once, where the loss explodes for either optimizer. Scaling the peak keeps the recipe's
    # warm-up slope, so the run takes the learning rates of the recipe's first `steps` steps.
    lr = config["Optimizer"]["lr"]
    lr["learning_rate"] = lr["warmup_start_lr"] + (lr["learning_rate"] - lr["warmup_start_lr"]) * steps / (
        lr["warmup_epoch"] * RECIPE_STEPS_PER_EPOCH)
    train = config["DataLoader"]["Train"]
    train["dataset"]["image_root"] = data_root
    train["dataset"]["cls_label_path"] = write_images(data_root, steps * batch, image, classes, seed)
    # Random crops, flips and colour jitter would make the two runs differ by their draws only.
    keep = [op for op in train["dataset"]["transform_ops"] if next(iter(op)) in ("DecodeImage", "NormalizeImage")]
    train["dataset"]["transform_ops"] = keep[:1] + [{"ResizeImage": {"size": image}}] + keep[1:]
    train["sampler"].update(batch_size=batch, shuffle=False, drop_last=True)
    train["loader"].update(num_workers=0, use_shared_memory=False)
    del config["DataLoader"]["Eval"]
    return config


def _type_name(obj):
    return f"{type(obj).__module__}.{type(obj).__name__}"


def train_dynamic(config):
    """PaddleClas's ``Engine(config).train()``. Returns the loss of every step, the weights before and after
    (``{structured name: ndarray}``), the EMA weights, each parameter's weight decay and the optimizer."""
    from ppcls.engine.engine import Engine

    engine = Engine(config, mode="train")
    losses = []
    # CombinedLoss overrides __call__ (no hooks run there); TinyNet's config has one loss, CELoss.
    (loss_layer,) = engine.train_loss_func.loss_func
    loss_layer.register_forward_post_hook(lambda layer, inputs, out: losses.append(float(out["CELoss"])))
    (optimizer,) = engine.optimizer
    decay = {name: str(param.regularizer or optimizer.regularization)
             for name, param in engine.model.named_parameters()}
    initial = {k: v.numpy() for k, v in engine.model.state_dict().items()}
    engine.train()
    return {"losses": losses, "initial": initial,
            "weights": {k: v.numpy() for k, v in engine.model.state_dict().items()},
            "ema": {k: v.numpy() for k, v in engine.model_ema.module.state_dict().items()},
            "decay": decay, "optimizer": _type_name(optimizer)}


def train_static(config):
    """PaddleClas's static program (``ppcls.static.program.build``: model, loss, ``build_optimizer``,
    ``minimize``) fed as ``ppcls.static.program.run`` feeds it. Returns the losses, the parameters before
    and after (``{name: ndarray}``) and the update ops of the program."""
    import paddle
    from ppcls.data import build_dataloader
    from ppcls.static import program
    from ppcls.utils.logger import init_logger

    init_logger()
    paddle.enable_static()
    paddle.seed(config["Global"]["seed"])
    device = paddle.set_device("cpu")
    config["DataLoader"]["class_num"] = config["Arch"]["class_num"]
    loader = build_dataloader(config["DataLoader"], "Train", device)
    main, startup = paddle.static.Program(), paddle.static.Program()
    fetchs, lr_scheduler, feeds, optimizer = program.build(
        config, main, startup, config["Arch"]["class_num"], step_each_epoch=len(loader), is_distributed=False)
    exe = paddle.static.Executor(device)
    exe.run(startup)
    scope = paddle.static.global_scope()
    names = sorted(p.name for p in main.global_block().all_parameters())

    def read():
        return {name: np.array(scope.find_var(name).get_tensor()) for name in names}

    initial, losses = read(), []
    for batch in loader():
        feed = {key.name: batch[i] for i, key in enumerate(feeds.values())}
        (loss,) = exe.run(main, feed=feed, fetch_list=[fetchs["loss"][0]])
        losses.append(float(np.mean(loss)))
        lr_scheduler.step()
    ops = sorted({op.name() for op in main.global_block().ops if "rmsprop" in op.name()})
    return {"losses": losses, "initial": initial, "weights": read(), "ema": {}, "ops": ops,
            "optimizer": _type_name(optimizer)}


def run(paddleclas_root, optimizer, mode="dynamic", **kw):
    """One training run with the config name ``optimizer``, in a fresh temporary directory."""
    if paddleclas_root not in sys.path:
        sys.path.insert(0, paddleclas_root)
    register()
    with tempfile.TemporaryDirectory() as tmp:
        config = tinynet_config(paddleclas_root, os.path.join(tmp, "data"), os.path.join(tmp, "out"),
                                optimizer=optimizer, **kw)
        return (train_dynamic if mode == "dynamic" else train_static)(config)


def save(result, path):
    arrays = {"losses": np.asarray(result["losses"])}
    for kind in ("initial", "weights", "ema"):
        arrays.update({f"{kind}/{k}": v for k, v in result[kind].items()})
    for kind in ("decay", "ops", "optimizer"):
        arrays.update({f"{kind}/{k}": np.asarray(v) for k, v in _as_dict(result.get(kind)).items()})
    np.savez(path, **arrays)


def _as_dict(value):
    if value is None:
        return {}
    if isinstance(value, str):
        return {"": value}
    return value if isinstance(value, dict) else dict(enumerate(value))


def load(path):
    """What ``save`` wrote: losses (list), initial / weights / ema / decay (dicts), ops (list), optimizer."""
    result = {"initial": {}, "weights": {}, "ema": {}, "decay": {}, "ops": {}}
    with np.load(path) as f:
        for key in f.files:
            kind, _, name = key.partition("/")
            value = f[key]
            if kind == "losses":
                result["losses"] = value.tolist()
            elif kind == "optimizer":
                result["optimizer"] = str(value)
            else:
                result[kind][name] = str(value) if value.dtype.kind == "U" else value
    result["ops"] = [result["ops"][k] for k in sorted(result["ops"], key=int)]
    return result


def run_isolated(paddleclas_root, which, mode="dynamic", steps=6, image=32, overrides=()):
    """``run`` in a child process: PaddleClas's TinyNet names its parameters explicitly, and Paddle refuses a
    second model with the same parameter names in one process (or shares them in a static scope)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.npz")
        subprocess.run([sys.executable, os.path.abspath(__file__), "--paddleclas-root", paddleclas_root,
                        "--optimizer", which, "--mode", mode, "--steps", str(steps), "--image", str(image),
                        "--save", out] + [f"-o{o}" for o in overrides], check=True)
        return load(out)


def update_difference(a, b, kind="weights"):
    """||(w_a - w0) - (w_b - w0)|| / ||w_a - w0|| over every trainable weight (``kind="ema"``: their EMA), in
    float64: how far apart two runs' total updates are, relative to the update."""
    num = den = 0.0
    for name, w0 in a["initial"].items():
        if name.endswith(("_mean", "_variance")):  # batch-norm statistics, not updated by the optimizer
            continue
        da = a[kind][name].astype(np.float64) - w0
        db = b[kind][name].astype(np.float64) - b["initial"][name]
        num += float(np.sum((da - db) ** 2))
        den += float(np.sum(da ** 2))
    return math.sqrt(num / den)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paddleclas-root", default=os.environ.get("PADDLECLAS_ROOT"),
                        help="a PaddleClas checkout (default: $PADDLECLAS_ROOT)")
    parser.add_argument("--optimizer", choices=["ours", "builtin", "both"], default="both",
                        help="ours: name RMSPropOps; builtin: PaddleClas's RMSProp; both: each in its own process")
    parser.add_argument("--mode", choices=["dynamic", "static"], default="dynamic")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--image", type=int, default=32, help="image side in pixels")
    parser.add_argument("-o", "--override", action="append", default=[],
                        help="a PaddleClas config override, as tools/train.py takes them (Optimizer.rho=0.95)")
    parser.add_argument("--save", help="write the run's losses and weights to this .npz file (one optimizer)")
    args = parser.parse_args()
    if not args.paddleclas_root:
        parser.error("--paddleclas-root (or PADDLECLAS_ROOT) is required")
    root = os.path.abspath(os.path.expanduser(args.paddleclas_root))
    if args.optimizer != "both":
        result = run(root, NAMES[args.optimizer], args.mode, steps=args.steps, image=args.image,
                     overrides=args.override)
        if args.save:
            save(result, args.save)
        print(f"{args.optimizer} ({result['optimizer']}): losses " + " ".join(f"{v:.6f}" for v in result["losses"]))
        return
    builtin, ours = (run_isolated(root, which, args.mode, args.steps, args.image, args.override)
                     for which in ("builtin", "ours"))
    loss = np.max(np.abs(np.subtract(builtin["losses"], ours["losses"])))
    print(f"over {args.steps} steps: largest loss difference {loss:.3g}, "
          f"update difference {update_difference(builtin, ours):.3g} of the update")


if __name__ == "__main__":
    main()
