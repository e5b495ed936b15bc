"""Writing columns of predictions as CSV through pyarrow.

>>> import os, tempfile, numpy as np
>>> p = os.path.join(tempfile.mkdtemp(), "out.csv")
>>> write_csv(p, {"prediction": np.array([1, 0])})
>>> open(p).read().split()
['"prediction"', '1', '0']
"""
from __future__ import annotations

import numpy as np


def write_csv(path: str, columns: dict) -> None:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    table = pa.table({k: np.asarray(v) for k, v in columns.items()})
    pcsv.write_csv(table, path)
