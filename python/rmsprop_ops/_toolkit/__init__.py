"""Framework-free pieces shared by every front end (the functional API, the neutral optimizer and the
Paddle / MindSpore adapters).

Each module has one job and imports no framework: ``checks`` (argument checks driven by the core's op
registry), ``flat`` (the flat-state layout), ``grouping`` (parameters -> groups -> launches), ``ema``
(moving averages of the weights: decay schedules, overwrite and swap protocol), ``build`` (the framework
ops' compile-on-first-use cache) and ``cli`` (what the command lines print).
"""
