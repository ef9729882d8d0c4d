"""Published RMSProp training recipes as frozen data, each number with the source it was read from.

A :class:`Recipe` is data, not a code path: the convention, the hyper-parameters, the learning-rate
schedule (as numbers: base rate, decay, warmup, in epochs), the EMA of the weights and the weight-decay
exclusions of one published training setup. ``Recipe.sources`` says where every field was read; the
framework front ends read the same records. The neutral optimizer builds from one directly::

    >>> import numpy as np, rmsprop_ops
    >>> from rmsprop_ops import recipes
    >>> w = np.zeros((4, 4), np.float32); b = np.zeros(4, np.float32)
    >>> opt = rmsprop_ops.RMSProp.from_recipe([w, b], "efficientnet_tf", steps_per_epoch=100)
    >>> opt.rule.convention, opt.rule.epsilon, opt.ema_momentum, opt.learning_rates(0)
    ('tf1', 0.001, 0.9999, [0.0])
    >>> recipes.RECIPES["efficientnet_tf"].sources["epsilon"][:40]
    'tensorflow/tpu models/official/efficient'

The sources were read at these commits: tensorflow/tpu 7dc921f8, tensorflow/models 0ba83cf0 (slim
README) and 07ed3667 (train_image_classifier.py), huggingface/pytorch-image-models v1.0.9 and aa4b5850
(hfdocs), PaddlePaddle/PaddleClas d178931f, mindspore-lab/mindcv 51b0636d.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType

from ._toolkit.ema import EMA, make_ema
from ._toolkit.checks import integer, real_in
from .schedules import CosineDecay, ExponentialDecay, LinearWarmup, Schedule, StepDecay

__all__ = ["LRSchedule", "Recipe", "RECIPES", "get_recipe"]


@dataclass(frozen=True)
class LRSchedule:
    """A learning-rate schedule as numbers.

    ``kind``: ``"exponential"`` (``rate * decay_rate ** (t / decay_epochs)``, floored with
    ``staircase``), ``"step"`` (Paddle's StepDecay: ``decay_epochs`` truncated to whole steps),
    ``"cosine"`` (down to ``min_learning_rate`` over ``decay_epochs``). The rate is
    ``base_learning_rate * batch_size / reference_batch_size`` when a reference batch is given.
    Warmup: linear from ``warmup_start`` over ``warmup_epochs``; ``warmup_shift`` starts the decay
    after it (Keras, Paddle, mindcv) rather than under it (TF EfficientNet, timm). ``per_epoch``: the
    rate changes only at epoch boundaries (timm's default). ``whole_decay_steps``: the decay period is
    truncated to whole steps (slim).
    """

    kind: str
    base_learning_rate: float
    decay_epochs: float = 0.0
    decay_rate: float = 1.0
    staircase: bool = True
    min_learning_rate: float = 0.0
    reference_batch_size: int | None = None
    warmup_epochs: float = 0.0
    warmup_start: float = 0.0
    warmup_shift: bool = False
    per_epoch: bool = False
    whole_decay_steps: bool = False


@dataclass(frozen=True)
class Recipe:
    """One published RMSProp recipe (see the module docstring).

    ``hyper``: rho, momentum, epsilon, weight_decay (the convention's kind of decay, coupled L2 in every
    recipe here). ``no_decay_1d``: 1-D params (biases, norm scales) get no weight decay.
    ``weight_decay_exclusions``: which params the source exempts from the decay, in words.
    ``batch_size``: the batch the rates are for; ``epochs``: the training length (None: not stated).
    ``extra``: further optimizer arguments. ``notes``: what the data cannot express.
    """

    name: str
    description: str
    convention: str
    hyper: MappingProxyType
    schedule: LRSchedule
    batch_size: int
    epochs: int | None
    ema: EMA | None
    no_decay_1d: bool
    weight_decay_exclusions: str
    sources: MappingProxyType
    notes: str = ""
    extra: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    def learning_rate(self, steps_per_epoch=None, batch_size=None) -> Schedule:
        """The schedule of this recipe for ``steps_per_epoch`` (and ``batch_size``, default the
        recipe's), as :mod:`rmsprop_ops.schedules` objects; steps count from 0."""
        s = self.schedule
        if steps_per_epoch is None:
            raise ValueError(f"steps_per_epoch: {self.name}'s rate changes with the epoch; expected the number "
                             f"of optimizer steps per epoch, got None")
        spe = real_in("steps_per_epoch", steps_per_epoch, low=0.0, low_open=True)
        batch = self.batch_size if batch_size is None else integer("batch_size", batch_size, minimum=1)
        lr = s.base_learning_rate * (batch / s.reference_batch_size if s.reference_batch_size else 1.0)
        unit = 1 if s.per_epoch else spe
        decay = s.decay_epochs * unit
        if s.kind == "cosine":
            main = CosineDecay(lr, decay, alpha=s.min_learning_rate / lr)
        elif s.kind == "step":
            main = StepDecay(lr, max(1, int(decay)), s.decay_rate)
        else:
            main = ExponentialDecay(lr, max(1, int(decay)) if s.whole_decay_steps else decay, s.decay_rate,
                                    staircase=s.staircase)
        if s.warmup_epochs:
            warm = s.warmup_epochs * unit
            main = LinearWarmup(main, max(1, int(warm)), start=s.warmup_start, shift=s.warmup_shift)
        return _EveryEpoch(main, spe) if s.per_epoch else main

    def optimizer_kwargs(self, steps_per_epoch=None, batch_size=None) -> dict:
        """Keyword arguments of :class:`rmsprop_ops.RMSProp` for this recipe."""
        kw = {"convention": self.convention, "learning_rate": self.learning_rate(steps_per_epoch, batch_size),
              **dict(self.hyper), **dict(self.extra)}
        if self.ema is not None:
            kw.update(use_ema=True, ema_momentum=self.ema.decay, ema_schedule=self.ema.schedule)
        return kw


class _EveryEpoch(Schedule):
    """``inner`` evaluated at the epoch of the step: the rate changes at epoch boundaries only."""

    def __init__(self, inner, steps_per_epoch):
        self.inner = inner
        self.steps_per_epoch = steps_per_epoch

    def value(self, step):
        return self.inner(math.floor(step / self.steps_per_epoch))


def _recipe(name, *, sources, hyper, schedule, ema=None, extra=None, **rest):
    extra = dict(extra or {})
    needed = (*hyper, *extra, "schedule", "batch_size", "convention", *(["ema"] if ema else []),
              *(["epochs"] if rest.get("epochs") is not None else []))
    missing = [k for k in needed if not sources.get(k)]
    assert not missing, f"{name}: fields without a source: {missing}"
    return Recipe(name=name, hyper=MappingProxyType(hyper), schedule=schedule, ema=ema,
                  sources=MappingProxyType(sources), extra=MappingProxyType(extra), **rest)


_TPU_EFF = "tensorflow/tpu models/official/efficientnet/"
_SLIM = "tensorflow/models research/slim/"
_V3_PAPER = "Searching for MobileNetV3 (arXiv:1905.02244) section 6.1"
_TIMM_DOCS = "pytorch-image-models hfdocs/source/training_script.mdx"
_TIMM = "pytorch-image-models v1.0.9 "
_PPCLS = "PaddleClas ppcls/configs/ImageNet/"
_MINDCV = "mindcv configs/"

RECIPES = MappingProxyType({r.name: r for r in (
    _recipe(
        "efficientnet_tf", description="EfficientNet-B0 on ImageNet, TensorFlow TPU reference implementation",
        convention="tf1", batch_size=2048, epochs=350, no_decay_1d=False,
        weight_decay_exclusions="variables with 'batch_normalization' in their name",
        hyper={"rho": 0.9, "momentum": 0.9, "epsilon": 1e-3, "weight_decay": 1e-5},
        schedule=LRSchedule("exponential", 0.016, decay_epochs=2.4, decay_rate=0.97, reference_batch_size=256,
                            warmup_epochs=5),
        ema=make_ema(0.9999, "tf1"),
        sources={"convention": _TPU_EFF + "utils.py build_optimizer: tf.train.RMSPropOptimizer",
                 "rho": _TPU_EFF + "utils.py build_optimizer(decay=0.9)",
                 "momentum": _TPU_EFF + "utils.py build_optimizer(momentum=0.9)",
                 "epsilon": _TPU_EFF + "utils.py build_optimizer(epsilon=0.001)",
                 "weight_decay": _TPU_EFF + "main.py flag weight_decay=1e-5, added to the loss as "
                                            "wd * tf.nn.l2_loss(v) (gradient wd * v)",
                 "schedule": _TPU_EFF + "main.py flags base_learning_rate=0.016 (per 256 images, scaled by "
                                        "train_batch_size / 256), lr_decay_epoch=2.4, lr_decay_factor=0.97, "
                                        "lr_warmup_epochs=5; utils.py build_learning_rate (staircase "
                                        "exponential_decay at global_step, warmup initial_lr * step / "
                                        "warmup_steps in its place)",
                 "batch_size": _TPU_EFF + "main.py flag train_batch_size=2048",
                 "epochs": _TPU_EFF + "main.py flag train_steps=218949, 'approximately 350 epochs at batch size 2048'",
                 "ema": _TPU_EFF + "main.py moving_average_decay=0.9999, ExponentialMovingAverage(decay, "
                                   "num_updates=global_step) applied after train_op"},
        notes="The decay applies to the whole loss gradient (coupled L2) except batch-norm variables: pass "
              "those in a group with weight_decay=0."),
    _recipe(
        "mobilenet_v2_tf", description="MobileNetV2 1.0 on ImageNet, TF-slim (one clone)",
        convention="tf1", batch_size=96, epochs=None, no_decay_1d=False,
        weight_decay_exclusions="slim's regularizer covers conv / fc weights only (arg_scope)",
        hyper={"rho": 0.9, "momentum": 0.9, "epsilon": 1.0, "weight_decay": 4e-5},
        schedule=LRSchedule("exponential", 0.045, decay_epochs=2.5, decay_rate=0.98, whole_decay_steps=True),
        ema=make_ema(0.9999, "tf1"),
        sources={"convention": _SLIM + "train_image_classifier.py _configure_optimizer: tf.train.RMSPropOptimizer",
                 "rho": _SLIM + "train_image_classifier.py flag rmsprop_decay=0.9",
                 "momentum": _SLIM + "train_image_classifier.py flag rmsprop_momentum=0.9",
                 "epsilon": _SLIM + "train_image_classifier.py flag opt_epsilon=1.0",
                 "weight_decay": _SLIM + "train_image_classifier.py flag weight_decay=0.00004 (slim "
                                         "l2_regularizer: gradient wd * w)",
                 "schedule": _SLIM + "nets/mobilenet/README.md: learning_rate=0.045 per clone, "
                                     "learning_rate_decay_factor=0.98, num_epochs_per_decay=2.5; "
                                     "train_image_classifier.py: staircase exponential_decay, decay_steps = "
                                     "int(num_samples / batch_size * num_epochs_per_decay)",
                 "batch_size": _SLIM + "nets/mobilenet/README.md: batch_size=96 per clone",
                 "ema": _SLIM + "nets/mobilenet/README.md moving_average_decay=0.9999; "
                                "train_image_classifier.py ExponentialMovingAverage(decay, global_step)"},
        notes="With N clones slim uses learning_rate 0.045 * N and num_epochs_per_decay 2.5 / N; slim runs the "
              "EMA update beside the gradient update, here it follows it."),
    _recipe(
        "mobilenet_v3_tf", description="MobileNetV3 on ImageNet, as published (TPU, TF RMSPropOptimizer)",
        convention="tf1", batch_size=4096, epochs=None, no_decay_1d=False, weight_decay_exclusions="not stated",
        hyper={"rho": 0.9, "momentum": 0.9, "epsilon": 1e-10, "weight_decay": 1e-5},
        schedule=LRSchedule("exponential", 0.1, decay_epochs=3.0, decay_rate=0.99),
        ema=make_ema(0.9999, "tf1"),
        sources={"convention": _V3_PAPER + ": 'standard tensorflow RMSPropOptimizer'",
                 "momentum": _V3_PAPER + ": '0.9 momentum'",
                 "rho": "not stated in " + _V3_PAPER + "; tf.compat.v1.train.RMSPropOptimizer default decay=0.9",
                 "epsilon": "not stated in " + _V3_PAPER + "; RMSPropOptimizer default epsilon=1e-10",
                 "weight_decay": _V3_PAPER + ": 'l2 weight decay 1e-5'",
                 "schedule": _V3_PAPER + ": 'initial learning rate of 0.1 ... learning rate decay rate of 0.01 "
                                         "every 3 epochs' (read as x0.99 every 3 epochs)",
                 "batch_size": _V3_PAPER + ": 'batch size 4096 (128 images per chip)'",
                 "ema": _V3_PAPER + ": 'exponential moving average with decay 0.9999'"},
        notes="tensorflow/models' MobileNet README has no V3 hyper-parameters ('TODO'); the paper is the "
              "only TF-side source. The staircase and the EMA's num_updates are not stated."),
    _recipe(
        "efficientnet_b0_timm", description="timm efficientnet_b0, --opt rmsproptf (2 GPUs x 384)",
        convention="tf1", batch_size=768, epochs=450, no_decay_1d=True,
        weight_decay_exclusions="params with ndim <= 1 and biases (timm param_groups_weight_decay)",
        hyper={"rho": 0.9, "momentum": 0.9, "epsilon": 1e-3, "weight_decay": 1e-5},
        schedule=LRSchedule("exponential", 0.048, decay_epochs=2.4, decay_rate=0.97, warmup_epochs=5,
                            warmup_start=1e-6, per_epoch=True),
        ema=make_ema(0.9999, "keras"),
        sources={"convention": _TIMM + "timm/optim/optim_factory.py: rmsproptf -> RMSpropTF (TF1 rule)",
                 "rho": _TIMM + "timm/optim/optim_factory.py: RMSpropTF(parameters, alpha=0.9, ...)",
                 "momentum": _TIMM + "train.py --momentum default 0.9",
                 "epsilon": _TIMM_DOCS + " efficientnet_b0: --opt-eps .001",
                 "weight_decay": _TIMM_DOCS + " efficientnet_b0: --weight-decay 1e-5",
                 "schedule": _TIMM_DOCS + " efficientnet_b0: --lr .048 --sched step --decay-epochs 2.4 "
                                          "--decay-rate .97 --warmup-lr 1e-6; " + _TIMM + "train.py "
                                          "--warmup-epochs 5; timm/scheduler/step_lr.py (per epoch, warmup "
                                          "not a prefix)",
                 "batch_size": _TIMM_DOCS + " efficientnet_b0: distributed_train.sh 2 ... -b 384",
                 "epochs": _TIMM_DOCS + " efficientnet_b0: --epochs 450",
                 "ema": _TIMM_DOCS + " --model-ema-decay 0.9999; " + _TIMM + "train.py ModelEmaV3.update("
                                     "model, step=num_updates) (decay 0 at the first update)"}),
    _recipe(
        "mobilenetv3_large_100_timm", description="timm mobilenetv3_large_100, --opt rmsproptf (2 GPUs x 512)",
        convention="tf1", batch_size=1024, epochs=600, no_decay_1d=True,
        weight_decay_exclusions="params with ndim <= 1 and biases (timm param_groups_weight_decay)",
        hyper={"rho": 0.9, "momentum": 0.9, "epsilon": 1e-3, "weight_decay": 1e-5},
        schedule=LRSchedule("exponential", 0.064, decay_epochs=2.4, decay_rate=0.973, warmup_epochs=5,
                            warmup_start=1e-6, per_epoch=True),
        ema=make_ema(0.9999, "keras"),
        sources={"convention": _TIMM + "timm/optim/optim_factory.py: rmsproptf -> RMSpropTF (TF1 rule)",
                 "rho": _TIMM + "timm/optim/optim_factory.py: RMSpropTF(parameters, alpha=0.9, ...)",
                 "momentum": _TIMM + "train.py --momentum default 0.9",
                 "epsilon": _TIMM_DOCS + " mobilenetv3_large_100: --opt-eps .001",
                 "weight_decay": _TIMM_DOCS + " mobilenetv3_large_100: --weight-decay 1e-5",
                 "schedule": _TIMM_DOCS + " mobilenetv3_large_100: --lr .064 --sched step --decay-epochs 2.4 "
                                          "--decay-rate .973 --warmup-lr 1e-6; " + _TIMM + "train.py "
                                          "--warmup-epochs 5",
                 "batch_size": _TIMM_DOCS + " mobilenetv3_large_100: distributed_train.sh 2 ... -b 512",
                 "epochs": _TIMM_DOCS + " mobilenetv3_large_100: --epochs 600",
                 "ema": _TIMM_DOCS + " --model-ema-decay 0.9999; " + _TIMM + "train.py ModelEmaV3"},
        notes="The command's --lr-noise 0.42 0.9 (random rate perturbation) is not reproduced."),
    _recipe(
        "efficientnet_b0_paddleclas", description="PaddleClas EfficientNetB0 (per device batch 128)",
        convention="paddle", batch_size=128, epochs=360, no_decay_1d=False, weight_decay_exclusions="none",
        hyper={"rho": 0.9, "momentum": 0.9, "epsilon": 1e-3, "weight_decay": 1e-5},
        schedule=LRSchedule("cosine", 0.032, decay_epochs=355, warmup_epochs=5, warmup_shift=True),
        sources={"convention": _PPCLS + "EfficientNet/EfficientNetB0.yaml Optimizer.name RMSProp "
                                        "(paddle.optimizer.RMSProp)",
                 "rho": _PPCLS + "EfficientNet/EfficientNetB0.yaml rho: 0.9",
                 "momentum": _PPCLS + "EfficientNet/EfficientNetB0.yaml momentum: 0.9",
                 "epsilon": _PPCLS + "EfficientNet/EfficientNetB0.yaml epsilon: 0.001",
                 "weight_decay": _PPCLS + "EfficientNet/EfficientNetB0.yaml regularizer L2 coeff 0.00001",
                 "schedule": _PPCLS + "EfficientNet/EfficientNetB0.yaml lr Cosine learning_rate 0.032 "
                                      "warmup_epoch 5, epochs 360; ppcls/optimizer/learning_rate.py Cosine "
                                      "(T_max = (epochs - warmup_epoch) steps, LinearWarmup before it)",
                 "batch_size": _PPCLS + "EfficientNet/EfficientNetB0.yaml DataLoader.Train batch_size 128",
                 "epochs": _PPCLS + "EfficientNet/EfficientNetB0.yaml Global.epochs 360"}),
    _recipe(
        "tinynet_a_paddleclas", description="PaddleClas TinyNet_A (per device batch 128)",
        convention="paddle", batch_size=128, epochs=450, no_decay_1d=True,
        weight_decay_exclusions="params with ndim == 1 (one_dim_param_no_weight_decay)",
        hyper={"rho": 0.9, "momentum": 0.9, "epsilon": 1e-3, "weight_decay": 1e-5},
        schedule=LRSchedule("step", 0.048, decay_epochs=2.4, decay_rate=0.97, warmup_epochs=3, warmup_start=1e-6,
                            warmup_shift=True),
        ema=make_ema(0.9999, "constant"),
        sources={"convention": _PPCLS + "TinyNet/TinyNet_A.yaml Optimizer.name RMSProp",
                 "rho": _PPCLS + "TinyNet/TinyNet_A.yaml rho: 0.9",
                 "momentum": _PPCLS + "TinyNet/TinyNet_A.yaml momentum: 0.9",
                 "epsilon": _PPCLS + "TinyNet/TinyNet_A.yaml epsilon: 0.001",
                 "weight_decay": _PPCLS + "TinyNet/TinyNet_A.yaml regularizer L2 coeff 1e-5, "
                                          "one_dim_param_no_weight_decay: True",
                 "schedule": _PPCLS + "TinyNet/TinyNet_A.yaml lr Step learning_rate 0.048 step_size 2.4 gamma "
                                      "0.97 warmup_epoch 3 warmup_start_lr 1e-6; ppcls/optimizer/"
                                      "learning_rate.py Step (step_size = int(2.4 * step_each_epoch))",
                 "batch_size": _PPCLS + "TinyNet/TinyNet_A.yaml DataLoader.Train batch_size 128",
                 "epochs": _PPCLS + "TinyNet/TinyNet_A.yaml Global.epochs 450",
                 "ema": _PPCLS + "TinyNet/TinyNet_A.yaml EMA decay 0.9999; ppcls/utils/ema.py (fixed decay "
                                 "from a copy of the model)"}),
    _recipe(
        "efficientnet_b0_mindcv", description="mindcv efficientnet_b0 on Ascend (8 devices x 128)",
        convention="mindspore", batch_size=128, epochs=450, no_decay_1d=False,
        weight_decay_exclusions="none (weight_decay_filter 'disable')",
        hyper={"rho": 0.9, "momentum": 0.9, "epsilon": 1e-3, "weight_decay": 1e-5},
        schedule=LRSchedule("cosine", 0.128, decay_epochs=445, min_learning_rate=1e-10, warmup_epochs=5,
                            warmup_shift=True),
        sources={"convention": "mindcv mindcv/optim/optim_factory.py: opt 'rmsprop' -> mindspore.nn.RMSProp",
                 "rho": "mindcv passes no decay: mindspore.nn.RMSProp default decay=0.9",
                 "momentum": _MINDCV + "efficientnet/efficientnet_b0_ascend.yaml momentum: 0.9",
                 "epsilon": _MINDCV + "efficientnet/efficientnet_b0_ascend.yaml eps: 1e-3",
                 "weight_decay": _MINDCV + "efficientnet/efficientnet_b0_ascend.yaml weight_decay: 1e-5",
                 "schedule": _MINDCV + "efficientnet/efficientnet_b0_ascend.yaml scheduler cosine_decay lr 0.128 "
                                       "min_lr 1e-10 warmup_epochs 5 decay_epochs 445; mindcv/scheduler/"
                                       "scheduler_factory.py (warmup, then the cosine from its start, per step)",
                 "batch_size": _MINDCV + "efficientnet/efficientnet_b0_ascend.yaml batch_size: 128 (per device)",
                 "epochs": _MINDCV + "efficientnet/efficientnet_b0_ascend.yaml epoch_size: 450"},
        notes="Dynamic loss scaling (loss_scale_type 'dynamic', drop_overflow_update) maps to "
              "skip_nonfinite=True with gradients divided by the current scale."),
    _recipe(
        "mnasnet_100_mindcv", description="mindcv mnasnet_100 on Ascend (8 devices x 256)",
        convention="mindspore", batch_size=256, epochs=450, no_decay_1d=False,
        weight_decay_exclusions="none (weight_decay_filter 'disable')",
        hyper={"rho": 0.9, "momentum": 0.9, "epsilon": 1e-3, "weight_decay": 1e-5},
        schedule=LRSchedule("cosine", 0.016, decay_epochs=445, min_learning_rate=1e-10, warmup_epochs=5,
                            warmup_shift=True),
        extra={"loss_scale_factor": 256.0},
        sources={"convention": "mindcv mindcv/optim/optim_factory.py: opt 'rmsprop' -> mindspore.nn.RMSProp",
                 "rho": "mindcv passes no decay: mindspore.nn.RMSProp default decay=0.9",
                 "momentum": _MINDCV + "mnasnet/mnasnet_1.0_ascend.yaml momentum: 0.9",
                 "epsilon": _MINDCV + "mnasnet/mnasnet_1.0_ascend.yaml eps: 1e-3",
                 "weight_decay": _MINDCV + "mnasnet/mnasnet_1.0_ascend.yaml weight_decay: 1e-5",
                 "schedule": _MINDCV + "mnasnet/mnasnet_1.0_ascend.yaml scheduler cosine_decay lr 0.016 "
                                       "min_lr 1e-10 warmup_epochs 5 decay_epochs 445",
                 "batch_size": _MINDCV + "mnasnet/mnasnet_1.0_ascend.yaml batch_size: 256 (per device)",
                 "epochs": _MINDCV + "mnasnet/mnasnet_1.0_ascend.yaml epoch_size: 450",
                 "loss_scale_factor": _MINDCV + "mnasnet/mnasnet_1.0_ascend.yaml loss_scale: 256 (static; "
                                                "MindSpore's optimizer loss_scale)"}),
)})


def get_recipe(name) -> Recipe:
    """The :class:`Recipe` called ``name`` (a key of :data:`RECIPES`), or a Recipe as given."""
    if isinstance(name, Recipe):
        return name
    if not isinstance(name, str):
        raise TypeError(f"recipe: expected a str, got {type(name).__name__} ({name!r})")
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"recipe: expected one of {sorted(RECIPES)}, got {name!r}") from None
