"""How the optimisation runs and how workers agree.

One process: ``gd``, ``lbfgs``, ``sgd``. Over a collective: ``gd`` and ``lbfgs``
(full-batch gradients allreduced), ``bsp`` (synchronous mini-batch SGD),
``local_sgd`` (parameters averaged every H steps) and ``average`` (one-shot model
averaging). With one worker each reduces to its one-process form.

>>> sorted(STRATEGIES)
['average', 'bsp', 'gd', 'lbfgs', 'local_sgd']
"""
from shardlearn.strategies import average, gd, lbfgs, sgd

STRATEGIES = {"gd": gd.fit, "lbfgs": lbfgs.fit, "bsp": sgd.fit, "local_sgd": sgd.fit, "average": average.fit}
