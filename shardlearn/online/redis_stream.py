"""Redis Streams as a source of examples: ``redis://HOST:PORT/STREAM?group=G&consumer=C[&count=N]``.

Each entry carries one example in its field ``data`` (one line of the chosen format). The
learner is consumer ``C`` of group ``G`` (created at the stream's start if missing, the
stream too): ``XREADGROUP`` hands it entries, and it ``XACK``s them only after a checkpoint
holding them is durable (``committed``). Exactly once after a crash: on restart the
consumer first re-reads its own pending entries (delivered, never acknowledged), skips
(and acknowledges) those at or below the checkpoint's entry ID, which the model already
holds, and learns the rest in ID order, then goes on with new entries. An entry without a
``data`` field, or holding more than one line, is skipped and counted. ``count``: entries
asked for at each ``XREADGROUP`` (default 10,000), so the most a learner holds delivered
and unacknowledged beyond its last checkpoint is about two reads. redis-py (Redis's own
client) does the talking.

>>> RedisStream.parse("redis://127.0.0.1:6390/clicks?group=g&consumer=c1")
('127.0.0.1', 6390, 'clicks', 'g', 'c1', 10000)
"""
from __future__ import annotations

import bisect
import time
from urllib.parse import parse_qs, urlparse

from shardlearn.core.errors import ConfigError

COUNT = 10_000  # entries per XREADGROUP, unless the address says count=N


def _id(entry_id) -> tuple[int, int]:
    ms, _, seq = (entry_id.decode() if isinstance(entry_id, bytes) else entry_id).partition("-")
    return int(ms), int(seq or 0)


class RedisStream:
    def __init__(self, url: str):
        import redis

        self.host, self.port, self.stream, self.group, self.consumer, self.count = self.parse(url)
        self.name, self.resumable = url, True
        self.client = redis.Redis(host=self.host, port=self.port, socket_timeout=30)
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.exceptions.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise ConfigError(f"{url}: {e}") from None
        except redis.exceptions.ConnectionError as e:
            raise ConfigError(f"{url}: cannot connect ({e})") from None
        self.delivered: list = []  # learned, not yet acknowledged
        # the reply as Redis sends it (entries as [ID, [field, value, ...]]): no dict built per entry
        self.client.response_callbacks["XREADGROUP"] = lambda reply, **_: reply

    @staticmethod
    def parse(url: str):
        u = urlparse(url)
        q = parse_qs(u.query)
        stream = u.path.lstrip("/")
        if u.scheme != "redis" or not u.hostname or not stream or "group" not in q or "consumer" not in q:
            raise ConfigError(f"{url!r} is not a stream address; expected "
                              "redis://HOST:PORT/STREAM?group=GROUP&consumer=CONSUMER[&count=N]")
        count = q.get("count", [str(COUNT)])[0]
        if not count.isdigit() or int(count) < 1:
            raise ConfigError(f"{url!r}: count={count} is not a whole number of entries >= 1")
        return u.hostname, u.port or 6379, stream, q["group"][0], q["consumer"][0], int(count)

    def blocks(self, start: dict | None = None, stop=None, idle: float | None = None):
        stop = stop or (lambda: False)
        done = _id(start["id"]) if start else (0, -1)  # entries at or below it are in the model already
        cursor, last_data = "0", time.monotonic()  # "0": this consumer's pending entries first, then ">"
        while not stop():
            reply = self.client.xreadgroup(self.group, self.consumer, {self.stream: cursor}, count=self.count,
                                           block=None if cursor != ">" else 100)
            entries = _entries(reply)
            if cursor != ">":
                if not entries:
                    cursor = ">"
                    continue
                cursor = entries[-1][0]  # page on through the pending list
            if not entries:
                if idle is not None and time.monotonic() - last_data >= idle:
                    return
                continue
            last_data = time.monotonic()
            ids = [e for e, _ in entries]  # ascending within a reply: those already learned come first
            cut = bisect.bisect_right(ids, done, key=_id)
            if cut:
                self.client.xack(self.stream, self.group, *ids[:cut])
            if cut == len(ids):
                continue
            fresh, ids = entries[cut:], ids[cut:]
            self.delivered.extend(ids)
            done = _id(ids[-1])
            datas = [f[1] if f and len(f) == 2 and f[0] == b"data" else _data(f) for _, f in fresh]
            if None not in datas:
                text = b"\n".join(d.rstrip(b"\r\n") for d in datas) + b"\n"
            if None in datas or text.count(b"\n") != len(datas):  # entries it cannot use: found one by one
                kept, text, skipped = _usable(ids, datas)
            else:
                kept, skipped = ids, {}
            where = (lambda i, kept=kept: f"{self.name}: entry {kept[i].decode()}")
            yield text if kept else b"", {"id": ids[-1].decode()}, where, skipped

    def committed(self, position: dict) -> None:
        """The checkpoint holding everything up to ``position`` is durable: acknowledge it."""
        cut = bisect.bisect_right(self.delivered, _id(position["id"]), key=_id)  # delivered in ID order
        if cut:
            self.client.xack(self.stream, self.group, *self.delivered[:cut])
            del self.delivered[:cut]


def _entries(reply) -> list:
    """``[[ID, [field, value, ...]], ...]`` of a raw XREADGROUP reply for one stream (RESP2: a list of
    ``[stream, entries]``; RESP3: a map)."""
    if not reply:
        return []
    streams = reply.values() if isinstance(reply, dict) else (s[1] for s in reply)
    return next(iter(streams)) or []


def _data(fields):
    """The ``data`` field's value among ``[field, value, ...]`` (None: absent, or the entry was deleted)."""
    if not fields:
        return None
    for k, v in zip(fields[::2], fields[1::2]):
        if k == b"data":
            return v
    return None


def _usable(ids: list, datas: list):
    """``(their IDs, their lines, skipped by reason)`` of the entries holding one line in ``data``."""
    kept, lines, skipped = [], [], {}
    for entry_id, data in zip(ids, datas):
        why = "entry has no 'data' field" if data is None else \
            "entry holds more than one line" if b"\n" in data.rstrip(b"\r\n") else None
        if why:
            skipped[why] = skipped.get(why, 0) + 1
            continue
        kept.append(entry_id)
        lines.append(data.rstrip(b"\r\n"))
    return kept, b"\n".join(lines) + (b"\n" if lines else b""), skipped
