"""Learning-rate schedules: functions of the step count (0, 1, 2, ...).

>>> constant(0.1)(10)
0.1
>>> inverse_scaling(1.0, power_t=0.5)(3)
0.5
"""
from __future__ import annotations

from typing import Callable, Union

Schedule = Callable[[int], float]
ScalarOrSchedule = Union[float, Schedule]


def constant(learning_rate: float) -> Schedule:
    return lambda count: learning_rate


def inverse_scaling(learning_rate: float, power_t: float = 0.5) -> Schedule:
    """``lr / (t + 1) ** power_t`` (Robbins & Monro, 1951; scikit-learn's "invscaling")."""
    return lambda count: learning_rate / (count + 1.0) ** power_t


def as_schedule(lr: ScalarOrSchedule) -> Schedule:
    return lr if callable(lr) else constant(float(lr))


SCHEDULES = {"constant": constant, "invscaling": inverse_scaling}
