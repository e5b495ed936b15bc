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
            entries = reply[0][1] if reply else []
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
            old = [e for e, _ in entries if _id(e) <= done]
            if old:
                self.client.xack(self.stream, self.group, *old)
            fresh = [(e, fields) for e, fields in entries if _id(e) > done]
            if not fresh:
                continue
            lines, ids, skipped = [], [], {}
            for entry_id, fields in fresh:
                data = fields.get(b"data")
                why = "entry has no 'data' field" if data is None else \
                    "entry holds more than one line" if b"\n" in data.rstrip(b"\r\n") else None
                self.delivered.append(entry_id)
                if why:
                    skipped[why] = skipped.get(why, 0) + 1
                    continue
                lines.append(data.rstrip(b"\r\n"))
                ids.append(entry_id.decode())
            done = _id(fresh[-1][0])
            where = (lambda i, ids=ids: f"{self.name}: entry {ids[i]}")
            yield b"\n".join(lines) + (b"\n" if lines else b""), {"id": fresh[-1][0].decode()}, where, skipped

    def committed(self, position: dict) -> None:
        """The checkpoint holding everything up to ``position`` is durable: acknowledge it."""
        upto = _id(position["id"])
        done = [e for e in self.delivered if _id(e) <= upto]
        if done:
            self.client.xack(self.stream, self.group, *done)
            self.delivered = [e for e in self.delivered if _id(e) > upto]
