"""Compiled hot loops (numba, ``nopython``, ``cache=True``): the per-example learning
kernel of the stochastic strategies (``kernels.sgd``)."""
