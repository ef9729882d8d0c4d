"""Framework-free pieces shared by the optimizers (the neutral one and the Paddle / MindSpore front ends).

Each module has one job and imports no framework: ``grouping`` (parameters -> groups -> launches),
``ema`` (moving averages of the weights: decay schedules, overwrite and swap protocol), ``build`` (the
framework ops' compile-on-first-use cache) and ``cli`` (what the command lines print).
"""
