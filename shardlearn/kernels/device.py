"""The full-batch pass on a torch device: a worker's dense rows live on the device (a GPU,
or the CPU for the same code path without one), and each objective evaluation runs the two
products there, ``X @ w`` forward and ``dz^T X`` backward, in ``X``'s dtype. The model's
own per-row loss (``models/*.link``) runs on the host on the ``(n,)`` or ``(n, K)`` scores,
so the device path gives the host path's numbers (to the products' rounding) for every
model. ``DeviceRows`` stands in for ``X`` in ``models._glm.loss_and_grad``.

``device``: ``"cpu"``, ``"cuda"`` / ``"cuda:N"``, or None for automatic: a CUDA device when
one is present (a worker takes ``cuda:{rank mod count}``), else the host's numpy path.

>>> import numpy as np
>>> from shardlearn import models
>>> X, y = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0]]), np.array([0, 1, 1])
>>> params = {"w": np.array([0.5, -0.5]), "b": np.array(0.1)}
>>> host = models.get("logistic").loss_and_grad(params, X, y)
>>> dev = models.get("logistic").loss_and_grad(params, DeviceRows(X, "cpu"), y)
>>> bool(abs(host[0] - dev[0]) < 1e-15 and np.allclose(host[1]["w"], dev[1]["w"], rtol=0, atol=1e-15))
True
"""
from __future__ import annotations

import os

import numpy as np

from shardlearn.core.errors import ConfigError


def cuda_present() -> bool:
    """A CUDA device torch can use (checked without importing torch where no NVIDIA driver is loaded)."""
    if not os.path.exists("/proc/driver/nvidia/version") and not os.environ.get("CUDA_VISIBLE_DEVICES"):
        return False
    import torch

    return torch.cuda.is_available()


def resolve(device: str | None, rank: int = 0) -> str | None:
    """The device a worker computes on: None (the host's numpy path) or a torch device name."""
    if device is None:
        return resolve("cuda", rank) if cuda_present() else None
    if device == "cpu":
        return "cpu"
    if device == "cuda" or device.startswith("cuda:"):
        if not cuda_present():
            raise ConfigError(f"device={device!r}, but torch sees no CUDA device here; use device='cpu' or leave it "
                              "unset")
        import torch

        return device if ":" in device else f"cuda:{rank % torch.cuda.device_count()}"
    raise ConfigError(f"device={device!r} is not known; expected 'cpu', 'cuda', 'cuda:N' or None (automatic)")


class DeviceRows:
    """Dense rows held on a torch device; ``X @ w`` and ``A @ X`` return host arrays."""

    __array_ufunc__ = None  # numpy hands ``A @ rows`` to ``__rmatmul__``
    one_pass = True  # one forward and one backward product per evaluation, not cache-sized blocks

    def __init__(self, X, device: str):
        import torch

        X = np.asarray(X)
        self.dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        self.device = torch.device(device)
        self.X = torch.as_tensor(np.ascontiguousarray(X, dtype=self.dtype), device=self.device)
        self.shape = tuple(X.shape)

    def _on(self, a):
        import torch

        return torch.as_tensor(np.ascontiguousarray(a, dtype=self.dtype), device=self.device)

    def __matmul__(self, w) -> np.ndarray:
        return (self.X @ self._on(w)).cpu().numpy()

    def __rmatmul__(self, A) -> np.ndarray:
        return (self._on(A) @ self.X).cpu().numpy()

    def __getitem__(self, rows):
        out = DeviceRows.__new__(DeviceRows)
        out.dtype, out.device, out.X = self.dtype, self.device, self.X[rows]
        out.shape = tuple(out.X.shape)
        return out
