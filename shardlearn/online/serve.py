"""Serving a model while it learns, or from its model directory.

- ``shardlearn serve MODEL_DIR`` (``serve``): answers from the newest checkpoint in
  ``MODEL_DIR`` and swaps in each newer one a learner commits there (polled every
  ``poll_s``; a checkpoint is committed by an atomic rename, so a folder seen is complete).
- ``shardlearn learn ... --serve HOST:PORT`` (``LearnServing``): the server runs in a thread
  of the learner, which publishes a snapshot of its model at every checkpoint, and learns the
  delayed labels ``POST /feedback`` (or a labels stream, ``--feedback-from``) collects between
  two blocks of its stream.

uvicorn runs in a thread of its own (it installs no signal handlers there): SIGTERM and
SIGINT reach the learner's or the watcher's loop, which ends with a last checkpoint; the
server then stops, letting requests in flight finish.

>>> parse_address("127.0.0.1:8000"), parse_address(":0")
(('127.0.0.1', 8000), ('127.0.0.1', 0))
"""
from __future__ import annotations

import os
import sys
import threading
import time

from shardlearn.core.errors import ConfigError, ModelFileError
from shardlearn.online import snapshot
from shardlearn.online.feedback import Feedback, read_labels
from shardlearn.online.server import MAX_BODY, Live, make_app

POLL_S = 0.25
SWITCH_S = 0.001  # the interpreter's switch interval while serving (Python's default: 5 ms)


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (the host 127.0.0.1 when left out; port 0: any free one)."""
    host, colon, port = str(text).rpartition(":")
    if not colon or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"--serve/--bind {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8000")
    return host.strip("[]") or "127.0.0.1", int(port)


class Serving:
    """uvicorn serving ``app`` on ``host:port`` from a thread, as a context manager;
    ``address`` is where it listens (the port chosen when 0 was asked)."""

    def __init__(self, app, host: str, port: int):
        import uvicorn

        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                timeout_graceful_shutdown=3, lifespan="off")
        self.server, self.host, self.port = uvicorn.Server(config), host, port
        self.thread = threading.Thread(target=self.server.run, name="shardlearn-serve", daemon=True)
        self.address = None

    def __enter__(self):
        self._switch = sys.getswitchinterval()  # a learner's or loader's thread holding the GIL hands it
        sys.setswitchinterval(SWITCH_S)  # back to the requests within 1 ms, not 5: the p99 during swaps
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                sys.setswitchinterval(self._switch)
                raise ConfigError(f"cannot serve on {self.host}:{self.port}: the address is in use or not "
                                  "available here")
            time.sleep(0.01)
        sock = self.server.servers[0].sockets[0].getsockname()
        self.address = f"http://{self.host}:{sock[1]}"
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)
        sys.setswitchinterval(self._switch)


def serve(model_dir: str, *, bind: str = "127.0.0.1:8000", token: str | None = None, max_body: int = MAX_BODY,
          poll_s: float = POLL_S, out=sys.stderr) -> dict:
    """Serve ``model_dir`` until SIGINT/SIGTERM, swapping in every newer checkpoint."""
    from shardlearn.online.learn import stop_on_signals

    host, port = parse_address(bind)
    if not os.path.isdir(model_dir):
        raise ModelFileError(f"{model_dir}: no such model directory")
    first = snapshot.load(model_dir)
    live = Live(first)
    t0 = time.monotonic()
    with stop_on_signals() as stop, Serving(make_app(live, token=token, max_body=max_body), host, port) as srv:
        print(f"shardlearn: serving {model_dir} (model version {first.version}) on {srv.address}", file=out,
              flush=True)
        while not stop.wait(poll_s):
            current = live.snapshot.version
            if snapshot.newest(model_dir) > current:
                new = snapshot.load(model_dir, newer_than=current)
                if new is not None:
                    live.swap(new)
    return {"model_dir": model_dir, "address": srv.address, "model_version": live.snapshot.version,
            "swaps": live.swaps, "seconds": time.monotonic() - t0}


class LearnServing:
    """``learn --serve``: the server in a thread of the learner, and the learner's side of it
    (``publish`` a snapshot, ``feedback`` the delayed labels to learn)."""

    def __init__(self, bind: str, *, token: str | None = None, max_body: int = MAX_BODY,
                 feedback_ttl_s: float = 600.0, labels: str | None = None, out=sys.stderr):
        self.host, self.port = parse_address(bind)
        self.token, self.max_body, self.out, self.labels = token, max_body, out, labels
        self.feedback = Feedback(feedback_ttl_s)
        self._reading_labels = threading.Event()  # set: the labels stream's thread stops
        self.live = self._serving = self.address = None

    def start(self, first, staleness_bound_s: float | None = None) -> None:
        self.live = Live(first, staleness_bound_s)
        app = make_app(self.live, token=self.token, max_body=self.max_body, feedback=self.feedback)
        self._serving = Serving(app, self.host, self.port).__enter__()
        self.address = self._serving.address
        if self.labels is not None:
            read_labels(self.labels, self.feedback, self._reading_labels, first.reading.get("positive"))
        print(f"shardlearn: serving predictions on {self._serving.address} (model version {first.version})",
              file=self.out, flush=True)

    def publish(self, snap) -> None:
        self.live.swap(snap)

    def close(self) -> None:
        self._reading_labels.set()
        if self._serving is not None:
            self._serving.__exit__(None, None, None)
            self._serving = None

    def summary(self) -> dict:
        return {"address": self.address, "model_version": self.live.snapshot.version if self.live else None,
                "swaps": self.live.swaps if self.live else 0, "feedback": self.feedback.tally()}
