"""Snapshots of an online model for serving: a copy of the model no learner writes to again,
with its version (the checkpoint it was published at), what it had learned, when, and how
the learner read its examples (so a request's instances are hashed the same way).

A snapshot is built whole, then handed over: the server swaps one reference, so a request
sees either the old snapshot or the new one, never a model half loaded (``online/server.py``).
Published three ways:

- by the learner itself, from its own model at each checkpoint (``shardlearn learn --serve``);
- by learner 0 of a group, from the state pulled from every parameter-server shard
  (``--workers N --serve``): never one learner's copy;
- from a model directory on disk (``shardlearn serve MODEL_DIR``): its newest committed
  checkpoint (a group's checkpoint is assembled from its shards' files), else its model files.
  Nothing is unpickled: arrays are read with ``allow_pickle=False``, checksums verified.

>>> from shardlearn import OnlineLogisticRegression
>>> m = OnlineLogisticRegression(hash_bits=8)
>>> m.learn_one({"x": 1.0}, 1)
>>> s = of_model(m, version=3, reading={"format": "jsonl", "label": "y"})
>>> m.learn_one({"x": 1.0}, 0)  # the learner goes on; the snapshot does not change
>>> from shardlearn.online.instances import rows
>>> s.version, s.examples, round(float(s.predict(rows([{"x": 1.0}], s.reading, bits=8))[0]), 3)
(3, 1, 0.696)
"""
from __future__ import annotations

import json
import os
import time
from typing import NamedTuple

import numpy as np

from shardlearn.core import modelfile
from shardlearn.core.errors import ModelFileError
from shardlearn.kernels.sgd import G, W
from shardlearn.online.estimators import ONLINE_ESTIMATORS
from shardlearn.online.instances import rows
from shardlearn.online.instances import text as instances_text
from shardlearn.ps import kernel_shard
from shardlearn.ps.slicer import make as make_slicer
from shardlearn.runtime.checkpoint import steps_on_disk, verify


class Snapshot(NamedTuple):
    model: object  # an online estimator, read only from now on
    version: int  # the checkpoint's number (0: nothing learned yet)
    examples: int  # examples learned
    progressive_loss: float  # mean loss of each before it was learned from (NaN before any)
    written: float  # when the state was taken (seconds since the epoch)
    reading: dict  # format, label, positive; CSV: columns and their kinds
    origin: str  # "learner", "parameter server", "checkpoint", "model files"

    def predict(self, X) -> np.ndarray:
        """Hashed rows -> predictions: a probability of the positive class under the logistic
        loss, the score ``w . x + b`` otherwise (its sign the class, for hinge)."""
        return self._link(self.model._scores(X))

    def answer(self, instances: list, keep: bool = False):
        """``(predictions, rows)`` of a request's ``instances`` (``online/instances.py``; raises
        ``InstanceError``). Vowpal Wabbit lines without namespace interactions are parsed in one
        compiled call (``data.vwtext.quick``) and scored (rows None then) unless ``keep`` asks
        for the rows."""
        model = self.model
        if not keep and self.reading.get("format") == "vw" and not model.interactions:
            z = model._text_scores(instances_text(instances), len(instances))
            if z is not None:
                return self._link(z), None
        X = rows(instances, self.reading, model.hash_bits, model.interactions)
        return self.predict(X), X

    def _link(self, z: np.ndarray) -> np.ndarray:
        return self.model._proba(z) if self.model.loss == "logistic" else z


def _build(kind: str, params: dict, arrays: dict, facts: dict):
    out = ONLINE_ESTIMATORS[kind](**params)
    out.restore(arrays, facts)
    return out


def of_model(model, *, version: int, reading: dict, origin: str = "learner", state=None) -> Snapshot:
    """A snapshot of a learner's own ``model`` (copied: the learner goes on). ``state``: the
    ``model.snapshot()`` a checkpoint just took; the copy is then built from its touched rows,
    not copied across the whole hash width."""
    copy = model.copy() if state is None else _build(type(model).__name__, model.get_params(), *state)
    return Snapshot(copy, int(version), copy.n_seen_, copy.progressive_loss_, time.time(), dict(reading), origin)


def of_state(kind: str, params: dict, rows: np.ndarray, *, progress, n_seen: int, version: int, reading: dict,
             origin: str, written: float | None = None) -> Snapshot:
    """A snapshot from the whole ``(2**bits + 2, 4)`` kernel state of a parameter-server model
    (the features, the intercept, the kernel's scalars: ``online/learn_group.py``)."""
    d = rows.shape[0] - 2
    touched = np.flatnonzero(rows[: d + 1].any(axis=1))
    arrays = {"rows": touched, "state_rows": rows[touched], "scalars": rows[d + 1, [W, G]],
              "progress": np.asarray(progress, dtype=np.float64)}
    model = _build(kind, params, arrays, {"n_seen": int(n_seen)})
    return Snapshot(model, int(version), int(n_seen), model.progressive_loss_,
                    time.time() if written is None else written, dict(reading), origin)


def newest(model_dir: str) -> int:
    """The number of the newest committed checkpoint in ``model_dir`` (0: none)."""
    steps = steps_on_disk(os.path.join(model_dir, "checkpoints"))
    return steps[0] if steps else 0


def load(model_dir: str, newer_than: int = -1) -> Snapshot | None:
    """The newest snapshot in ``model_dir`` whose version is above ``newer_than``: its newest
    checkpoint that verifies, else (no checkpoint at all) its model files; None when there is
    nothing newer. A checkpoint removed while it was read (the learner keeps the last two) is
    passed over."""
    folder = os.path.join(model_dir, "checkpoints")
    steps = steps_on_disk(folder)
    for step in steps:
        if step <= newer_than:
            return None
        manifest, _ = verify(folder, step)
        if manifest is None:
            continue
        try:
            return _from_checkpoint(os.path.join(folder, f"ckpt-{step:09d}"), manifest, step)
        except (OSError, KeyError, ValueError):  # removed or replaced while read: the next one
            continue
    if steps or newer_than >= 0:
        return None
    meta, arrays = modelfile.read(model_dir)
    kind = meta.get("kind")
    if kind not in ONLINE_ESTIMATORS:
        raise ModelFileError(f"{model_dir}: holds a {kind!r} model; shardlearn serve serves models learned online "
                             f"({', '.join(ONLINE_ESTIMATORS)})")
    model = ONLINE_ESTIMATORS[kind].from_files(model_dir, meta, arrays)
    reading = meta.get("reading") or {"format": "jsonl", "label": None}
    return Snapshot(model, int(meta.get("version", 0)), model.n_seen_, model.progressive_loss_,
                    os.path.getmtime(os.path.join(model_dir, modelfile.META)), reading, "model files")


def _from_checkpoint(path: str, manifest: dict, step: int) -> Snapshot:
    facts = manifest["fingerprint"]
    kind = facts["estimator"]
    params = ONLINE_ESTIMATORS[kind]().get_params()
    params = {k: facts[k] for k in params}
    meta = manifest.get("meta", {})
    parts = sorted(n for n in manifest["parts"] if n.startswith("shard-"))
    if not parts:  # one learner: its own model
        with np.load(os.path.join(path, "rank-0.npz"), allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("rows", "state_rows", "scalars", "progress")}
        model = _build(kind, params, arrays, meta["estimator"])
        return Snapshot(model, step, model.n_seen_, model.progressive_loss_, float(manifest["written"]),
                        meta.get("reading") or _reading(facts), "checkpoint")
    shards, mine = [], []
    for name in parts:
        with np.load(os.path.join(path, name), allow_pickle=False) as z:
            shards.append({k: z[k] for k in z.files})
    for r in range(int(manifest["world_size"])):
        with np.load(os.path.join(path, f"rank-{r}.npz"), allow_pickle=False) as z:
            mine.append(json.loads(bytes(z["meta"]).decode()))
    d = 1 << int(params["hash_bits"])
    rows = kernel_shard.assemble(shards, make_slicer("range", d + 2, len(shards)), d + 2)
    progress = [sum(m["kernel_loss"] for m in mine), sum(m["progress"]["weight"] for m in mine)]
    return of_state(kind, params, rows, progress=progress, n_seen=sum(m["progress"]["examples"] for m in mine),
                    version=step, reading=mine[0].get("reading") or _reading(facts), origin="checkpoint",
                    written=float(manifest["written"]))


def _reading(facts: dict) -> dict:
    return {"format": facts.get("format", "vw"), "label": facts.get("label"), "positive": facts.get("positive")}
