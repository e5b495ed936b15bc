"""The HTTP prediction server (FastAPI, served by uvicorn): live predictions from a model
that is still learning.

- ``POST /predict`` ``{"instances": [...], "id": ...}`` -> ``{"predictions": [...],
  "model_version": N}`` (TF Serving's and KServe v1's shape); each instance in the
  learner's input format (``online/instances.py``). With ``id`` (one per instance, or one
  for a single instance) the hashed features are kept for a label that comes later.
- ``POST /feedback`` ``{"id": ..., "label": ..., "weight": 1}``: that label, learned from the
  features seen at prediction time (``online/feedback.py``; only while learning).
- ``GET /health``, ``GET /model`` (version, examples, progressive loss, the snapshot's age and
  where it came from), ``GET /metrics`` (Prometheus text format, ``prometheus_client``).

Hot swap: the server reads one reference, ``Live.snapshot``, once per request; a publisher
builds a whole new snapshot first and then replaces the reference (``Live.swap``). A request
therefore answers from the old model or the new one, never from a mixture, and none waits or
fails during a swap (TF Serving's p99 spikes while a model loads, tensorflow/serving #1866,
come from loading in the serving path; here loading happens off it).

Safety: binds 127.0.0.1 unless told otherwise; ``token``: every route but ``/health``
needs ``Authorization: Bearer TOKEN`` (compared in constant time, ``hmac.compare_digest``),
else 401; a body over ``max_body`` bytes gets 413 before it is read whole; an instance the
model cannot read gets 422 naming the instance and the field. Nothing from a request or a
model file is unpickled or executed (JSON in; model arrays read with ``allow_pickle=False``).

>>> from fastapi.testclient import TestClient
>>> from shardlearn import OnlineLogisticRegression
>>> from shardlearn.online.snapshot import of_model
>>> live = Live(of_model(OnlineLogisticRegression(hash_bits=8), version=1, reading={"format": "vw"}))
>>> client = TestClient(make_app(live))
>>> client.post("/predict", json={"instances": ["|a x:1"]}).json()
{'predictions': [0.5], 'model_version': 1}
>>> client.post("/predict", json={"instances": ["|a x:one"]}).json()["detail"][0]["msg"]
"instances[0]: feature value 'one' is not a number"
"""
from __future__ import annotations

import hmac
import math
import threading
import time
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, Field

from shardlearn.online.fields import label_value
from shardlearn.online.instances import InstanceError

MAX_BODY = 8 << 20  # bytes of a request body (``--max-body``)
OPEN = ("/health",)  # answered without the token (liveness probes)


class Live:
    """The snapshot being served; ``swap`` replaces it whole (a newer version only)."""

    def __init__(self, snapshot, staleness_bound_s: float | None = None):
        self.snapshot, self.swaps, self.staleness_bound_s = snapshot, 0, staleness_bound_s
        self._lock = threading.Lock()  # publishers only: a reader never takes it

    def swap(self, snapshot) -> bool:
        with self._lock:
            if snapshot.version <= self.snapshot.version and snapshot.examples <= self.snapshot.examples:
                return False
            self.snapshot = snapshot  # one reference: the next request reads the new model
            self.swaps += 1
            return True


class PredictRequest(BaseModel):
    instances: list[str | dict[str, Any] | list[Any]] = Field(
        min_length=1, description="examples in the learner's input format: VW text lines, JSON objects of "
                                  "features, or CSV rows as arrays")
    id: str | list[str] | None = Field(None, description="keeps the instances' features for a later POST /feedback: "
                                                         "one id per instance (or one for a single instance)")


class PredictResponse(BaseModel):
    predictions: list[float]
    model_version: int


class FeedbackRequest(BaseModel):
    id: str
    label: float | str | bool
    weight: float = Field(1.0, ge=0.0, allow_inf_nan=False)


class Metrics:
    """The server's Prometheus metrics, in a registry of its own (no process-wide state)."""

    def __init__(self, live: Live, feedback=None):
        self.registry = r = CollectorRegistry()
        self.requests = Counter("shardlearn_requests", "HTTP requests by route and status", ["route", "code"],
                                registry=r)
        self.latency = Histogram("shardlearn_request_seconds", "request latency by route", ["route"], registry=r,
                                 buckets=(1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0))
        self.predictions = Counter("shardlearn_predictions", "instances predicted", registry=r)
        Gauge("shardlearn_model_version", "version of the served snapshot", registry=r).set_function(
            lambda: live.snapshot.version)
        Gauge("shardlearn_model_examples", "examples the served snapshot has learned", registry=r).set_function(
            lambda: live.snapshot.examples)
        Gauge("shardlearn_model_age_seconds", "age of the served snapshot", registry=r).set_function(
            lambda: time.time() - live.snapshot.written)
        Gauge("shardlearn_model_swaps", "snapshots swapped in since the start", registry=r).set_function(
            lambda: live.swaps)
        if feedback is not None:
            for what in ("remembered", "labelled", "unknown", "expired", "dropped", "learned", "bad_label_lines"):
                Gauge(f"shardlearn_feedback_{what}", f"delayed-label examples {what}", registry=r).set_function(
                    lambda what=what: feedback.counts[what])


def make_app(live: Live, *, token: str | None = None, max_body: int = MAX_BODY, feedback=None) -> FastAPI:
    """The ASGI app serving ``live``; ``feedback`` (a ``Feedback``): accept ids and labels."""
    _warm(live.snapshot)
    app = FastAPI(title="shardlearn", summary="live predictions from a model that is learning", version="1",
                  responses={401: {"description": "the bearer token is missing or wrong (with --token)"}})
    posted = {400: {"description": "the body is not JSON"}, 413: {"description": "the body is over --max-body"}}
    metrics = Metrics(live, feedback)

    @app.post("/predict", response_class=JSONResponse, responses={200: {"model": PredictResponse}, **posted})
    async def predict(body: PredictRequest):
        snap = live.snapshot  # read once: the whole request answers from this snapshot
        ids = _ids(body.id, len(body.instances))
        if ids is not None and feedback is None:
            raise _unprocessable(["body", "id"], "ids are kept for feedback only while learning "
                                                 "(shardlearn learn --serve)")
        try:
            out, X = snap.answer(body.instances, keep=ids is not None)
        except InstanceError as e:
            loc = ["body", "instances", e.index] + ([e.field] if e.field is not None else [])
            raise _unprocessable(loc, str(e)) from None
        if ids is not None:
            feedback.remember(ids, X)
        metrics.predictions.inc(len(out))
        return JSONResponse({"predictions": out.tolist(), "model_version": snap.version})  # no second validation

    if feedback is not None:
        @app.post("/feedback", responses={**posted, 404: {"description": "the id is not kept (never given, "
                                                                             "already labelled, or expired)"}})
        async def give_feedback(body: FeedbackRequest):
            y = label_value(body.label, live.snapshot.reading.get("positive")) if not isinstance(body.label, bool) \
                else float(body.label)
            if isinstance(y, str):
                raise _unprocessable(["body", "label"], y)
            if not feedback.label(body.id, y, body.weight):
                raise HTTPException(404, f"id {body.id!r} is not kept: never predicted with, already labelled, or "
                                         f"older than {feedback.ttl_s:g} s")
            return {"id": body.id, "accepted": True}

    @app.get("/health")
    async def health():
        return {"status": "ok", "model_version": live.snapshot.version}

    @app.get("/model")
    async def model():
        snap = live.snapshot
        loss = snap.progressive_loss
        out = {"model_version": snap.version, "examples": snap.examples,
               "progressive_loss": None if math.isnan(loss) else loss, "loss": snap.model.loss,
               "age_s": time.time() - snap.written, "origin": snap.origin, "format": snap.reading.get("format"),
               "hash_bits": snap.model.hash_bits, "swaps": live.swaps}
        if live.staleness_bound_s is not None:
            out["staleness_bound_s"] = live.staleness_bound_s
        if feedback is not None:
            out["feedback"] = dict(feedback.tally(), pending=feedback.pending(), ttl_s=feedback.ttl_s)
        return out

    @app.get("/metrics", response_class=Response,
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
    async def prometheus():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return _guarded(app, metrics, token, max_body)


def _warm(snap) -> None:
    """Compile the parser and the scorer now (numba), not in the first request."""
    import scipy.sparse as sp

    snap.predict(sp.csr_matrix((1, 1 << snap.model.hash_bits)))
    if snap.reading.get("format") == "vw":
        snap.answer(["|a x:1"])  # the one compiled call
        snap.answer(["|a x:1"], keep=True)  # and the parser's own


def _ids(given, n: int):
    if given is None:
        return None
    ids = [given] if isinstance(given, str) else list(given)
    if len(ids) != n:
        raise _unprocessable(["body", "id"], f"expected {n} ids, one per instance, got {len(ids)}")
    return ids


def _unprocessable(loc: list, msg: str) -> HTTPException:
    return HTTPException(422, [{"loc": loc, "msg": msg, "type": "value_error"}])


def _guarded(app, metrics: Metrics, token: str | None, max_body: int):
    """The app behind a plain ASGI layer: the token, the body limit, the metrics of every request."""
    expected = f"Bearer {token}".encode() if token is not None else None

    async def guarded(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        route, t0, status = scope["path"], time.perf_counter(), [500]

        async def counted(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            headers = dict(scope["headers"])
            if expected is not None and route not in OPEN:
                given = headers.get(b"authorization", b"")
                if not hmac.compare_digest(given, expected):
                    return await _reply(counted, 401, "a valid 'Authorization: Bearer TOKEN' header is required",
                                        {"WWW-Authenticate": "Bearer"})
            length = headers.get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > max_body):
                return await _reply(counted, 413, f"the request body is over the limit of {max_body} bytes")
            if length is None and scope["method"] in ("POST", "PUT", "PATCH"):  # chunked: read up to the limit
                receive = await _buffered(receive, max_body)
                if receive is None:
                    return await _reply(counted, 413, f"the request body is over the limit of {max_body} bytes")
            return await app(scope, receive, counted)
        finally:
            known = route if route in ("/predict", "/feedback", "/health", "/model", "/metrics") else "other"
            metrics.requests.labels(known, str(status[0])).inc()
            metrics.latency.labels(known).observe(time.perf_counter() - t0)

    guarded.app = app  # the FastAPI app (its OpenAPI schema)
    return guarded


async def _buffered(receive, max_body: int):
    """A body sent without its length (chunked), read whole unless it passes ``max_body`` (None
    then), and handed on as one message."""
    parts, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        size += len(parts[-1])
        if size > max_body:
            return None
        more = message.get("more_body", False)
    body, sent = b"".join(parts), [False]

    async def replay():
        if sent[0]:
            return await receive()
        sent[0] = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _reply(send, status: int, detail: str, headers: dict | None = None) -> None:
    response = JSONResponse({"detail": detail}, status_code=status, headers=headers)
    await response({"type": "http"}, None, send)
