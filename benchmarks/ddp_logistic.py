"""The hand-written PyTorch DDP baseline: logistic regression as ``nn.Linear`` trained with
mini-batch AdaGrad on 2 gloo processes, each on its half of the rows, the way a PyTorch
user would write it (torch.multiprocessing.spawn, DistributedDataParallel).

The two processes start once per dataset and then train once per line read from stdin
(``EPOCHS``), each time from a zero model, writing ``model.npz`` and printing ``done``;
an empty line or end of input stops them. Process start and ``import torch`` (about 6 s
here) are so paid once, and ``seconds`` in ``model.npz`` is the training loop alone.

    printf '1\\n2\\n' | python benchmarks/ddp_logistic.py FOLDER ALPHA   # FOLDER holds X.npy, y.npy
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np


def _worker(rank, folder, alpha, port, requests, replies, world=2, batch=256, lr=0.1):
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    X = np.load(os.path.join(folder, "X.npy"), mmap_mode="r")
    y = np.load(os.path.join(folder, "y.npy"), mmap_mode="r")
    lo, hi = rank * len(y) // world, (rank + 1) * len(y) // world
    Xs, ys = torch.from_numpy(np.array(X[lo:hi])), torch.from_numpy(np.array(y[lo:hi]))
    steps = -(-(hi - lo) // batch)
    while True:
        epochs = torch.tensor([requests.get() if rank == 0 else 0])
        dist.broadcast(epochs, src=0)  # rank 0 reads the request, every rank trains
        epochs = int(epochs.item())
        if epochs <= 0:
            break
        torch.manual_seed(0)
        model = torch.nn.Linear(X.shape[1], 1, dtype=torch.float32)
        torch.nn.init.zeros_(model.weight)
        torch.nn.init.zeros_(model.bias)
        ddp = DistributedDataParallel(model)
        opt = torch.optim.Adagrad(ddp.parameters(), lr=lr)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        dist.barrier()
        t = time.perf_counter()
        g = torch.Generator().manual_seed(rank)
        for _ in range(epochs):
            order = torch.randperm(hi - lo, generator=g)
            for s in range(steps):
                idx = order[s * batch : (s + 1) * batch]
                opt.zero_grad()
                loss = loss_fn(ddp(Xs[idx]).squeeze(1), ys[idx]) + 0.5 * alpha * (model.weight ** 2).sum()
                loss.backward()  # DDP allreduces the gradient here
                opt.step()
        dist.barrier()
        seconds = time.perf_counter() - t
        if rank == 0:
            nbytes = epochs * steps * 2 * (world - 1) / world * 4 * (X.shape[1] + 1)  # ring allreduce, float32
            np.savez(os.path.join(folder, "model.npz"), w=model.weight.detach().numpy().ravel().astype(np.float64),
                     b=float(model.bias.item()), seconds=seconds, bytes=int(nbytes))
            replies.put("done")
    dist.destroy_process_group()


def main(argv=None) -> int:
    folder, alpha = (argv or sys.argv[1:])[:2]
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    requests, replies = ctx.SimpleQueue(), ctx.SimpleQueue()
    procs = mp.spawn(_worker, args=(folder, float(alpha), port, requests, replies), nprocs=2, join=False)
    for line in sys.stdin:
        if not line.strip():
            break
        requests.put(int(line))
        while replies.empty():  # a worker that dies raises here instead of leaving us waiting
            if procs.join(timeout=0.05):
                return 1
        print(replies.get(), flush=True)
    requests.put(0)
    while not procs.join():
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
