"""Framework-free building blocks shared by every front end of rmsprop_ops (the functional API, the
neutral optimizer, the Paddle and MindSpore adapters): argument checks driven by the core's op registry
(``checks``) and the flat-state layout (``flat``). Nothing here imports a framework."""
