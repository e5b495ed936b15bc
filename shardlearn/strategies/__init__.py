"""How the optimisation runs: one-process ``gd``, ``lbfgs`` and ``sgd`` so far.

>>> sorted(SOLVERS)
['gd', 'lbfgs', 'sgd']
"""
from shardlearn.strategies import gd, lbfgs, sgd

SOLVERS = {"gd": gd.fit, "lbfgs": lbfgs.fit, "sgd": sgd.fit}
