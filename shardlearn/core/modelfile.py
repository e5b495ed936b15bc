"""Model files: a directory with ``params.npz`` (arrays, read with
``allow_pickle=False``) and ``model.json`` (kind, hyper-parameters, classes,
feature count, format version, the SHA-256 of ``params.npz``, and the SHA-256 of
``model.json``'s own contents, so an edited hyper-parameter is refused, not loaded).

A missing, truncated or tampered file gives a one-line ``ModelFileError``.

>>> import numpy as np, tempfile
>>> d = tempfile.mkdtemp()
>>> write(d, {"kind": "demo"}, {"w": np.arange(3.0)})
>>> meta, arrays = read(d)
>>> meta["kind"], arrays["w"].tolist()
('demo', [0.0, 1.0, 2.0])
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile

import numpy as np

from shardlearn.core.errors import ModelFileError

FORMAT_VERSION = 1
META = "model.json"
ARRAYS = "params.npz"


def _atomic_write(path: str, data: bytes) -> None:
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write(directory: str, meta: dict, arrays: dict) -> None:
    """Write arrays and metadata; each file is replaced atomically."""
    os.makedirs(directory, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    blob = buf.getvalue()
    full = dict(meta, format_version=FORMAT_VERSION, arrays_sha256=hashlib.sha256(blob).hexdigest())
    full.pop("meta_sha256", None)
    full["meta_sha256"] = _meta_digest(full)
    _atomic_write(os.path.join(directory, ARRAYS), blob)
    _atomic_write(os.path.join(directory, META), (json.dumps(full, indent=2, sort_keys=True) + "\n").encode())


def jsonable_params(params: dict) -> dict:
    """Hyper-parameters as JSON holds them: numpy scalars as plain numbers, anything that is
    not a number, text, bool or None as None."""
    out = {}
    for k, v in params.items():
        v = v.item() if isinstance(v, np.generic) else v
        out[k] = v if isinstance(v, (int, float, str, bool, type(None))) else None
    return out


def _meta_digest(meta: dict) -> str:
    """SHA-256 of the metadata as canonical JSON, without the digest itself."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def read(directory: str) -> tuple[dict, dict]:
    """Read and verify a model directory (both files' checksums); never unpickles. The metadata
    returned still holds the checksums: ``write`` recomputes them."""
    meta_path, arr_path = os.path.join(directory, META), os.path.join(directory, ARRAYS)
    if not os.path.isdir(directory):
        raise ModelFileError(f"{directory}: no such model directory")
    for p in (meta_path, arr_path):
        if not os.path.isfile(p):
            raise ModelFileError(f"{p}: missing; a model directory holds {META} and {ARRAYS}")
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{meta_path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        found = meta.get("format_version") if isinstance(meta, dict) else None
        raise ModelFileError(f"{meta_path}: format_version {found!r} is not supported (expected {FORMAT_VERSION})")
    if meta.get("meta_sha256") != _meta_digest(meta):
        raise ModelFileError(f"{meta_path}: checksum does not match its contents; the file was modified or is "
                             "damaged (model files are written by shardlearn only)")
    with open(arr_path, "rb") as f:
        blob = f.read()
    if hashlib.sha256(blob).hexdigest() != meta.get("arrays_sha256"):
        raise ModelFileError(f"{arr_path}: checksum does not match {META}; the file is truncated or was modified")
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise ModelFileError(f"{arr_path}: cannot be read without pickle ({e})") from None
    return meta, arrays
