"""Turning table columns into model features: numeric columns as they are,
categorical (string) columns one-hot encoded over a vocabulary or hashed into
``2**hash_bits`` columns with murmurhash3 (Weinberger et al., 2009, "Feature
Hashing for Large Scale Multitask Learning"; scikit-learn's ``FeatureHasher``).
Both are stable: the same value maps to the same column on every worker and at
predict time. Unknown categories at predict time give an all-zero one-hot block.

>>> import numpy as np
>>> enc = Encoder(numeric=["x"], categorical=["c"], vocab={"c": ["a", "b"]})
>>> X = enc.transform({"x": np.array([1.5, 2.0]), "c": np.array(["b", "z"])})
>>> X.toarray().tolist(), enc.n_features, enc.feature_names()
([[1.5, 0.0, 1.0], [2.0, 0.0, 0.0]], 3, ['x', 'c=a', 'c=b'])
>>> h = Encoder(numeric=[], categorical=["c"], hash_bits=4)
>>> int(h.transform({"c": np.array(["b"])}).indices[0]) == int(h.transform({"c": np.array(["b"])}).indices[0])
True
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp


@dataclass
class Encoder:
    numeric: list
    categorical: list = field(default_factory=list)
    vocab: dict | None = None  # one-hot: column -> sorted list of values
    hash_bits: int | None = None  # hashing: width 2**hash_bits for all categorical columns together

    @property
    def n_features(self) -> int:
        if not self.categorical:
            return len(self.numeric)
        if self.hash_bits is not None:
            return len(self.numeric) + (1 << self.hash_bits)
        return len(self.numeric) + sum(len(self.vocab[c]) for c in self.categorical)

    def feature_names(self) -> list[str]:
        names = [str(c) for c in self.numeric]
        if self.categorical and self.hash_bits is None:
            names += [f"{c}={v}" for c in self.categorical for v in self.vocab[c]]
        elif self.categorical:
            names += [f"hash_{i}" for i in range(1 << self.hash_bits)]
        return names

    def transform(self, columns: dict):
        """``columns``: name -> 1-d array (numeric as float64, categorical as str)."""
        n = len(next(iter(columns.values()))) if columns else 0
        dense = np.column_stack([columns[c] for c in self.numeric]) if self.numeric else np.zeros((n, 0))
        if not self.categorical:
            return dense
        if self.hash_bits is not None:
            from sklearn.feature_extraction import FeatureHasher

            hasher = FeatureHasher(n_features=1 << self.hash_bits, input_type="string", alternate_sign=False)
            cats = [columns[c].astype(str) for c in self.categorical]
            tokens = ([f"{c}={v}" for c, v in zip(self.categorical, row)] for row in zip(*cats))
            block = hasher.transform(tokens)
        else:
            blocks = []
            for c in self.categorical:
                vocab = np.asarray(self.vocab[c], dtype=str)
                vals = columns[c].astype(str)
                pos = np.minimum(np.searchsorted(vocab, vals), max(len(vocab) - 1, 0))
                known = (vocab[pos] == vals) if len(vocab) else np.zeros(n, bool)
                rows = np.flatnonzero(known)
                blocks.append(sp.csr_matrix((np.ones(rows.size), (rows, pos[known])), shape=(n, len(vocab))))
            block = sp.hstack(blocks, format="csr")
        return sp.hstack([sp.csr_matrix(dense), block], format="csr")

    def to_json(self) -> dict:
        return {"numeric": list(self.numeric), "categorical": list(self.categorical), "vocab": self.vocab,
                "hash_bits": self.hash_bits}

    @classmethod
    def from_json(cls, d: dict) -> "Encoder":
        return cls(d["numeric"], d.get("categorical", []), d.get("vocab"), d.get("hash_bits"))
