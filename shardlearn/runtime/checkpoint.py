"""Checkpoints of a training run, written so that a killed run resumes without
losing or repeating work.

A checkpoint is a directory ``ckpt-STEP/`` under the checkpoint directory with
one ``rank-R.npz`` per worker (its parameters, optimizer state and data cursor,
as plain arrays, read back with ``allow_pickle=False``) and a ``manifest.json``
written last, holding the SHA-256 of every part, the run's fingerprint and rank
0's metrics so far. Every rank writes its part into ``.tmp-ckpt-STEP/`` and
fsyncs it; rank 0 gathers the checksums, writes the manifest, fsyncs, and
renames the folder into place (``rename`` is atomic), then removes all but the
newest two. A run killed at any moment therefore leaves either a complete
checkpoint or none; a checkpoint damaged afterwards (a flipped byte, a truncated
file) fails its checksum and the previous one is used, with a warning.

On resume every rank loads the checkpoint rank 0 chose (agreed by allreduce), so
the group restarts from one consistent cut, as in Chandy & Lamport's consistent
global snapshots (1985) taken at a synchronous step boundary.

>>> import numpy as np, tempfile
>>> d = tempfile.mkdtemp()
>>> ck = Checkpointer(d, every="2", fingerprint={"rows": 4})
>>> [s for s in range(1, 6) if ck.due(s)]
[2, 4]
>>> ck.save(4, {"w": np.arange(3.0)}, {"epoch": 1})
>>> step, arrays, meta = ck.load()
>>> step, arrays["w"].tolist(), meta["epoch"]
(4, [0.0, 1.0, 2.0], 1)
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import time
import warnings

import numpy as np

from shardlearn.core.errors import ConfigError

MANIFEST = "manifest.json"
KEEP = 2
_NAME = re.compile(r"^ckpt-(\d{9})$")


def parse_every(every) -> tuple[int | None, float | None]:
    """``"100"`` or ``100`` -> every 100 steps; ``"30s"``, ``"5m"`` -> every 30 or 300 seconds.

    >>> parse_every("100"), parse_every("30s"), parse_every("5m"), parse_every(None)
    ((100, None), (None, 30.0), (None, 300.0), (None, None))
    """
    if every is None:
        return None, None
    text = str(every).strip().lower()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smh]?)", text)
    if not m or float(m.group(1)) <= 0 or (not m.group(2) and "." in m.group(1)):
        raise ConfigError(f"checkpoint_every={every!r}: expected a positive step count (100) or a time (30s, 5m, 1h)")
    if not m.group(2):
        return int(m.group(1)), None
    return None, float(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: str, write) -> None:
    with open(path, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def steps_on_disk(directory: str) -> list[int]:
    """Steps of the complete (renamed) checkpoints in ``directory``, newest first."""
    if not os.path.isdir(directory):
        return []
    found = [int(m.group(1)) for m in map(_NAME.match, os.listdir(directory)) if m]
    return sorted(found, reverse=True)


def _path(directory: str, step: int) -> str:
    return os.path.join(directory, f"ckpt-{step:09d}")


def verify(directory: str, step: int) -> tuple[dict | None, str]:
    """The manifest of checkpoint ``step`` if every part is present and matches its checksum;
    otherwise ``(None, why)``."""
    folder = _path(directory, step)
    try:
        with open(os.path.join(folder, MANIFEST), "rb") as f:
            manifest = json.loads(f.read().decode())
        parts = manifest["parts"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return None, f"{folder}/{MANIFEST} is unreadable ({type(e).__name__})"
    for name, digest in parts.items():
        path = os.path.join(folder, name)
        try:
            actual = _sha256(path)
        except OSError:
            return None, f"{path} is missing"
        if actual != digest:
            return None, f"{path} fails its SHA-256 check (damaged or truncated)"
    return manifest, ""


class Checkpointer:
    """Saves and loads one run's checkpoints; every rank holds one and calls it at the same steps.

    ``every``: a step count or a time (see ``parse_every``); checkpoints are also written at
    the end of a run. ``fingerprint``: facts a resumed run must share with the one that wrote
    the checkpoint (model, rows, features, workers, strategy)."""

    def __init__(self, directory: str, every=None, comm=None, fingerprint: dict | None = None,
                 option: str = "--checkpoint-dir"):
        self.directory, self.comm, self.option = directory, comm, option  # option: what a user changes to start over
        self.every_steps, self.every_seconds = parse_every(every)
        self.rank = comm.rank if comm is not None else 0
        self.size = comm.size if comm is not None else 1
        self.fingerprint = dict(fingerprint or {})
        self.last_time = time.monotonic()
        self.next_probe = 1  # time-based: the next step at which ranks agree on "late yet?"
        self.last_step = None  # the step of the latest save (or before the first step seen), for the rate
        self.extra = None  # () -> dict of JSON facts rank 0 adds to the manifest (metrics so far)
        self.saved: list[int] = []
        self.loaded: str | None = None
        os.makedirs(directory, exist_ok=True)
        if self.size > 1:
            self._check_shared()

    def _check_shared(self) -> None:
        """A group's checkpoint is one folder each rank writes its part into and rank 0 renames
        into place: the directory must be one that every host sees (on hosts of their own, a
        local path on each would commit checkpoints missing the other hosts' parts, found only
        when a resume fails). Rank 0 writes a random token there; a rank that does not read it
        back stops every rank with one line naming it and its host."""
        token = os.path.join(self.directory, ".shared-check")
        nonce = np.frombuffer(os.urandom(16), dtype=np.uint8) if self.rank == 0 else np.zeros(16, np.uint8)
        if self.rank == 0:
            _write_synced(token, lambda f: f.write(nonce.tobytes()))
        nonce = self.comm.allgather(nonce)[0]
        try:
            with open(token, "rb") as f:
                seen = f.read() == nonce.tobytes()
        except OSError:
            seen = False
        host = socket.gethostname().encode()[:63]
        mine = np.frombuffer(bytes([int(seen)]) + host.ljust(63, b"\0"), dtype=np.uint8)
        replies = self.comm.allgather(mine)
        if self.rank == 0:
            os.remove(token)
        blind = [(r, bytes(a[1:]).rstrip(b"\0").decode(errors="replace")) for r, a in enumerate(replies) if not a[0]]
        if blind:
            who = ", ".join(f"rank {r} on {h}" for r, h in blind)
            raise ConfigError(f"{self.directory}: {who} cannot see the files rank 0 writes there; a group's checkpoints "
                              f"need one directory every host shares (NFS, a mounted bucket): set {self.option} to one")

    # --- deciding -----------------------------------------------------------
    def due(self, step: int) -> bool:
        """Whether to checkpoint after ``step``; the same answer on every rank.

        By steps: local arithmetic. By time: rank 0's clock decides, but asking every step would
        be one collective per step (the hidden synchronisation of issue 12: ``asp`` in lockstep,
        ``local_sgd`` talking every step). So ranks only agree at *probe* steps: at each probe
        rank 0 says whether the interval has passed and, if not, at which step to ask again,
        from its step rate (doubling the gap while it has none yet). A time-based interval costs
        a handful of collectives, and every rank passes the same step numbers, so all take part."""
        if self.every_steps is not None:
            return step % self.every_steps == 0
        if self.every_seconds is None:
            return False
        if self.last_step is None:  # the first step this run sees (a resumed run starts late)
            self.last_step, self.next_probe = step - 1, step
        if step < self.next_probe:
            return False
        answer = np.zeros(2)
        if self.rank == 0:
            elapsed = time.monotonic() - self.last_time
            left = self.every_seconds - elapsed
            done = step - self.last_step
            if left <= 0:
                answer[0] = 1.0
            elif done > 0 and elapsed > 0.05:  # a rate to go by: ask again near the deadline
                answer[1] = step + max(1.0, 0.9 * left * done / elapsed)
            else:
                answer[1] = step + max(1, done)
        if self.size > 1:
            answer = self.comm.allreduce(answer, op="max")
        if answer[0] > 0:
            return True
        self.next_probe = int(answer[1])
        return False

    # --- writing ------------------------------------------------------------
    def path(self, step: int) -> str:
        """The folder of committed checkpoint ``step``."""
        return _path(self.directory, step)

    def staging(self, step: int) -> str:
        """The folder checkpoint ``step`` is written into before it is committed (others, such as
        parameter-server shards, may add files there; rank 0 names them in ``save(extra=...)``)."""
        tmp = os.path.join(self.directory, f".tmp-ckpt-{step:09d}")
        os.makedirs(tmp, exist_ok=True)
        return tmp

    def save(self, step: int, arrays: dict, meta: dict | None = None, extra: list[str] | None = None) -> None:
        """Write this rank's ``arrays``; rank 0 also writes ``meta``, checksums the ``extra`` files
        already in ``staging(step)``, and commits the checkpoint, which is durable on return."""
        tmp = self.staging(step)
        name = f"rank-{self.rank}.npz"
        _write_synced(os.path.join(tmp, name), lambda f: np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()}))
        digest = np.frombuffer(bytes.fromhex(_sha256(os.path.join(tmp, name))), dtype=np.uint8)
        digests = self.comm.allgather(digest) if self.size > 1 else [digest]
        if self.rank == 0:
            manifest = {"step": int(step), "world_size": self.size, "fingerprint": self.fingerprint,
                        "parts": dict({f"rank-{r}.npz": bytes(np.asarray(d, dtype=np.uint8)).hex()
                                       for r, d in enumerate(digests)},
                                      **{name: _sha256(os.path.join(tmp, name)) for name in (extra or [])}),
                        "meta": dict(meta or {}, **(self.extra() if self.extra else {})), "written": time.time()}
            blob = (json.dumps(manifest) + "\n").encode()
            _write_synced(os.path.join(tmp, MANIFEST), lambda f: f.write(blob))
            _fsync_dir(tmp)
            final = _path(self.directory, step)
            if os.path.exists(final):  # stale, from a run this one replaced
                shutil.rmtree(final)
            os.rename(tmp, final)
            _fsync_dir(self.directory)
            for old in steps_on_disk(self.directory)[KEEP:]:
                shutil.rmtree(_path(self.directory, old), ignore_errors=True)
        if self.size > 1:  # committed when save returns, on every rank: no rank stages the next one (the
            self.comm.barrier()  # same step again, at a run's end) into the folder rank 0 is renaming
        self.saved.append(int(step))
        self.last_time = time.monotonic()
        self.last_step, self.next_probe = int(step), int(step) + 1

    def clear(self) -> None:
        """A fresh run: remove earlier checkpoints and unfinished writes (rank 0), then agree."""
        if self.rank == 0:
            for entry in os.listdir(self.directory):
                if _NAME.match(entry) or entry.startswith(".tmp-ckpt-"):
                    shutil.rmtree(os.path.join(self.directory, entry), ignore_errors=True)
        if self.size > 1:
            self.comm.barrier()

    # --- reading ------------------------------------------------------------
    def load(self):
        """``(step, arrays, meta)`` of the newest valid checkpoint, the same one on every rank,
        or None when there is none. Damaged newer ones are reported and skipped."""
        chosen = -1
        if self.rank == 0:
            chosen = self._choose()
        if self.size > 1:
            chosen = int(self.comm.allreduce(np.array([float(chosen)]), op="max")[0])
        if chosen < 0:
            return None
        folder = _path(self.directory, chosen)
        with open(os.path.join(folder, MANIFEST), "rb") as f:
            manifest = json.loads(f.read().decode())
        part = os.path.join(folder, f"rank-{self.rank}.npz")
        if _sha256(part) != manifest["parts"][f"rank-{self.rank}.npz"]:
            raise ConfigError(f"{part} changed while the run resumed from it")
        with np.load(part, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        self.loaded = folder  # where the other parts of this checkpoint are (parameter-server shards)
        return chosen, arrays, manifest.get("meta", {})

    def _choose(self) -> int:
        for entry in os.listdir(self.directory):  # unfinished writes of the killed attempt
            if entry.startswith(".tmp-ckpt-"):
                shutil.rmtree(os.path.join(self.directory, entry), ignore_errors=True)
        for step in steps_on_disk(self.directory):
            manifest, why = verify(self.directory, step)
            if manifest is None:  # kept aside for inspection, out of the way of later saves
                warnings.warn(f"checkpoint skipped: {why}; using the previous one", RuntimeWarning, stacklevel=3)
                aside = os.path.join(self.directory, f"damaged-ckpt-{step:09d}-{int(time.time())}")
                os.rename(_path(self.directory, step), aside)
                continue
            # "workers": the group's size (a fingerprint may name it: each worker of "average" checkpoints alone)
            theirs = dict({"workers": manifest.get("world_size")}, **manifest.get("fingerprint", {}))
            for key, value in dict({"workers": self.size}, **self.fingerprint).items():
                if key in theirs and theirs[key] != value:
                    raise ConfigError(f"{_path(self.directory, step)} belongs to another run: {key} was "
                                      f"{theirs[key]!r} there and is {value!r} here; use a fresh {self.option}")
            return step
        return -1
