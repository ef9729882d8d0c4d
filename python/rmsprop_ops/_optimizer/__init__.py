"""The framework-neutral optimizer, one responsibility per module.

``arrays`` (views, checks, memory overlap), ``groups`` (parameter groups' hyper-parameters),
``gradients`` (Keras' gradient options, pure), ``launches`` (state buffers, core calls), ``averages``
(EMA on NumPy), ``checkpoint`` (state dicts), ``optimizer`` (the class composing them).
"""

from .optimizer import RMSProp

__all__ = ["RMSProp"]
