"""`require "kafka"`: lua_sandbox_extensions' Kafka module on confluent-kafka (librdkafka).

The Lua face (`sandbox/io/kafka.lua`) checks arguments and flattens configuration tables, then
calls the functions here with plain values; consumers and producers are integer handles, so no
Python object ever reaches plugin code.

Where hsp departs from the C module, it is to keep Hindsight's durability promise across the
process boundary that the C module never had to cross:

* **Consumer offsets follow the input queue.** librdkafka's auto commit and offset store are
  off. A record counts as *handed over* once the plugin asks for the next one (the plugin has
  injected or skipped it by then). A flush listener registered with the input runner snapshots
  the handed-over offsets when the runner takes its buffer; the returned `commit()` runs after that
  buffer is in the queue and commits those offsets (asynchronously). On a rebalance the consumer
  first asks the runner to flush (so everything handed over becomes durable and committed), then
  commits synchronously before giving the partitions up. What was fetched but not handed over is
  redelivered to the next owner: at-least-once, never ahead of the queue.
* **Producer checkpoints follow deliveries, in order.** Each `send` gets the next token; delivery
  reports may arrive out of order across partitions, so `poll` reports the highest token below
  which *every* message was delivered. A failed delivery stops that prefix (the checkpoint never
  passes an undelivered message) and `poll` raises, terminating the plugin, unless the plugin
  opted into Hindsight's count-and-skip behaviour with `producer:skip_failures(true)`.
"""

from __future__ import annotations

import errno
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from hindsight_py.iomods.context import IoContext
from hindsight_py.message.decode import DecodeError, decode_message
from hindsight_py.message.text import message_to_json_obj

__all__ = ["KafkaModule", "VERSION"]

VERSION = "1.0.0"  # the lua_sandbox_extensions kafka module version whose API this follows

POLL_SECONDS = 0.1  # receive() waits this long for a record before returning nil
BATCH = 500  # records taken from librdkafka's fetch queue per refill
ENOBUFS, EMSGSIZE, ENOENT, ESRCH = errno.ENOBUFS, errno.EMSGSIZE, errno.ENOENT, errno.ESRCH

# Settings hsp owns on a consumer: turning them on would commit offsets before the queue write.
_OWNED_TRUE = ("enable.auto.commit", "auto.commit.enable", "enable.auto.offset.store")

TP = tuple[str, int]  # (topic, partition)


def _s(v: bytes | str) -> str:
    return v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else v


def _pairs(flat: tuple[Any, ...]) -> dict[str, str]:
    """The face sends configuration tables as key, value, key, value ... (all strings)."""
    return {_s(flat[i]): _s(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}


def _conf_error(e: KafkaException, conf: Mapping[str, str]) -> str:
    """librdkafka's complaint in the C module's words (`Failed to set key = value : reason`)."""
    err = e.args[0] if e.args else None
    text = err.str() if isinstance(err, KafkaError) else str(e)
    m = re.search(r'property "([^"]+)"', text)
    if m and m.group(1) in conf:
        return f"Failed to set {m.group(1)} = {conf[m.group(1)]} : {text}"
    return f"rd_kafka_new failed: {text}"


def _check_brokers(brokerlist: str) -> None:
    if not any(b.strip() for b in brokerlist.split(",")):
        raise ValueError("invalid broker list")


# -- consumer -----------------------------------------------------------------------------------
@dataclass
class _Record:
    value: bytes
    topic: str
    partition: int
    key: bytes | None
    offset: int


@dataclass
class KafkaConsumer:
    """One consumer with queue-synchronised offset commits (see the module docstring)."""

    ctx: IoContext
    consumer: Consumer
    lock: threading.Lock = field(default_factory=threading.Lock)
    buffered: deque[_Record] = field(default_factory=deque)
    assigned: set[TP] = field(default_factory=set)
    handed: dict[TP, int] = field(default_factory=dict)  # next offset after the handed-over records
    durable: dict[TP, int] = field(default_factory=dict)  # ... after those known to be in the queue
    committed: dict[TP, int] = field(default_factory=dict)  # ... last commit sent to Kafka
    last: _Record | None = None  # returned by receive(), not yet handed over
    closed: bool = False
    manual: bool = False

    def start(self, topics: list[TP]) -> None:
        self.manual = any(p >= 0 for _, p in topics)
        if self.manual:
            tps = [TopicPartition(t, p) for t, p in topics]
            self.assigned = {(t, p) for t, p in topics}
            self.consumer.assign(tps)
        else:
            self.consumer.subscribe(
                [t for t, _ in topics], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
            )
        self.ctx.add_flush_listener(self._listener)

    # Rebalance callbacks run inside consumer.poll()/consume(), on the plugin's thread.
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        with self.lock:
            for tp in partitions:
                self.assigned.add((tp.topic, tp.partition))
        self.ctx.log("info", "kafka partitions assigned: " + _tp_text(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if not self.closed:
            # Everything handed over goes to the queue now; its commit() commits the offsets.
            self.ctx.flush()
        self._give_up(partitions, commit=True)
        self.ctx.log("info", "kafka partitions revoked: " + _tp_text(partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._give_up(partitions, commit=False)  # another member owns them already: no commit
        self.ctx.log("warning", "kafka partitions lost: " + _tp_text(partitions))

    def _give_up(self, partitions: list[TopicPartition], commit: bool) -> None:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        with self.lock:
            # All of them, synchronously: an asynchronous commit of the same offsets may still be
            # in flight, and the next owner reads the committed offsets as soon as we rejoin.
            offsets = [TopicPartition(t, p, o) for (t, p), o in self.durable.items() if (t, p) in gone]
            self.assigned -= gone
            if self.last is not None and (self.last.topic, self.last.partition) in gone:
                self.last = None
            self.buffered = deque(r for r in self.buffered if (r.topic, r.partition) not in gone)
            for tp in gone:
                self.handed.pop(tp, None)
                self.durable.pop(tp, None)
                self.committed.pop(tp, None)
        if commit and offsets:
            try:
                self.consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as e:
                self.ctx.log("error", f"kafka commit on revoke failed: {e}")

    # The input runner calls this under its buffer lock when it takes the buffer to write it.
    def _listener(self) -> Callable[[], None] | None:
        with self.lock:
            if self.closed or not self.handed:
                return None
            snap = dict(self.handed)
        return lambda: self._commit(snap)

    def _commit(self, snap: dict[TP, int]) -> None:
        """Runs once the buffer that held these records is in the queue (any thread)."""
        with self.lock:
            if self.closed:
                return
            offsets = []
            for tp, o in snap.items():
                if tp not in self.assigned:
                    continue  # revoked meanwhile: its new owner commits from here on
                if self.durable.get(tp, -1) < o:
                    self.durable[tp] = o
                if self.committed.get(tp, -1) < o:
                    self.committed[tp] = o
                    offsets.append(TopicPartition(tp[0], tp[1], o))
        if offsets:
            self.consumer.commit(offsets=offsets, asynchronous=True)

    def receive(self) -> tuple[Any, ...]:
        self._hand_over()
        if not self.ctx.is_running():
            time.sleep(0.01)  # stopping: nothing new is taken (it could only be lost)
            return (None, None, None, None, None)
        rec = self._next()
        if rec is None:
            return (None, None, None, None, None)
        with self.lock:
            self.last = rec
        return (rec.value, rec.topic, rec.partition, rec.key, rec.offset)

    def _hand_over(self) -> None:
        with self.lock:
            rec = self.last
            if rec is not None:
                self.last = None
                tp = (rec.topic, rec.partition)
                if tp in self.assigned:
                    self.handed[tp] = rec.offset + 1

    def _next(self) -> _Record | None:
        while True:
            with self.lock:
                while self.buffered:
                    rec = self.buffered.popleft()
                    if (rec.topic, rec.partition) in self.assigned:
                        return rec
            msg = self.consumer.poll(POLL_SECONDS)  # (rebalance callbacks run in here)
            if msg is None:
                return None
            msgs = [msg]
            if msg.error() is None:
                msgs += self.consumer.consume(BATCH - 1, 0)
            got = False
            with self.lock:
                for m in msgs:
                    rec = self._record(m)
                    if rec is not None:
                        self.buffered.append(rec)
                        got = True
            if not got:
                return None

    def _record(self, m: Message) -> _Record | None:
        err = m.error()
        if err is not None:
            code = err.code()
            if code in (KafkaError._UNKNOWN_PARTITION, KafkaError._UNKNOWN_TOPIC, KafkaError.UNKNOWN_TOPIC_OR_PART):
                if m.topic():
                    raise RuntimeError(
                        f"topic: {m.topic()} partition: {m.partition()} offset: {m.offset()} err: {err.str()}"
                    )
                raise RuntimeError(f"{err.name()} err: {err.str()}")
            if code != KafkaError._PARTITION_EOF:
                self.ctx.log("warning", f"kafka consumer: {err.str()}")
            return None
        value = m.value()
        return _Record(value if value is not None else b"", m.topic() or "", m.partition() or 0, m.key() or None, m.offset() or 0)

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.ctx.flush()  # what was handed over becomes durable and committed
        except Exception as e:  # noqa: BLE001 - closing must go on
            self.ctx.log("warning", f"kafka consumer flush on close failed: {e}")
        with self.lock:
            self.closed = True
            offsets = [TopicPartition(t, p, o) for (t, p), o in self.durable.items() if (t, p) in self.assigned]
        try:
            if offsets:
                self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as e:
            self.ctx.log("warning", f"kafka commit on close failed: {e}")
        try:
            self.consumer.close()
        except (KafkaException, RuntimeError) as e:
            self.ctx.log("warning", f"kafka consumer close failed: {e}")


def _tp_text(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}:{tp.partition}" for tp in partitions) or "none"


# -- producer -----------------------------------------------------------------------------------
@dataclass
class KafkaProducer:
    """One producer reporting in-order delivery progress as a token prefix."""

    ctx: IoContext
    producer: Producer
    max_in_flight: int  # async_buffer_size - 1: the runner's ring must still hold every slot
    topics: dict[str, bool] = field(default_factory=dict)
    sent: int = 0  # last token handed to librdkafka
    acked: int = 0  # every token <= acked is delivered (or a skipped failure)
    reported: int = 0  # acked as last returned by poll()
    done: set[int] = field(default_factory=set)  # delivered tokens above acked
    failed: dict[int, str] = field(default_factory=dict)  # undelivered tokens -> error text
    failures: int = 0  # failures since the last poll
    skip_failures: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def create_topic(self, topic: str) -> None:
        self.topics.setdefault(topic, True)

    def send(self, topic: str, partition: int, msg: bytes, key: bytes | None) -> int:
        if topic not in self.topics:
            raise ValueError("invalid topic")
        if self.max_in_flight and self.sent - self.acked >= self.max_in_flight:
            self.producer.poll(0)
            if self.sent - self.acked >= self.max_in_flight:
                return ENOBUFS
        token = self.sent + 1
        try:
            self.producer.produce(
                topic, msg, key, partition=partition, on_delivery=lambda err, m: self._delivered(token, err)
            )
        except BufferError:
            return ENOBUFS
        except KafkaException as e:
            code = e.args[0].code() if e.args and isinstance(e.args[0], KafkaError) else None
            if code == KafkaError.MSG_SIZE_TOO_LARGE:
                return EMSGSIZE
            if code in (KafkaError._UNKNOWN_TOPIC, KafkaError.UNKNOWN_TOPIC_OR_PART):
                return ENOENT
            if code == KafkaError._UNKNOWN_PARTITION:
                return ESRCH
            raise
        self.sent = token
        return 0

    def _delivered(self, token: int, err: KafkaError | None) -> None:
        """librdkafka's delivery report (runs inside producer.poll()/flush() on the caller's thread)."""
        with self.lock:
            if err is not None:
                self.failures += 1
                self.ctx.log("error", f"kafka delivery error\t{err.code()}\t{err.str()}")
                if not self.skip_failures:
                    self.failed[token] = err.str()
                    return
            self.done.add(token)
            while self.acked + 1 in self.done:
                self.acked += 1
                self.done.discard(self.acked)

    def poll(self, timeout_ms: int) -> tuple[int | None, int, str | None]:
        """(new acked token or None, failures since last poll, first undelivered error or None)."""
        if timeout_ms < 0:
            self.producer.flush()
        else:
            self.producer.poll(timeout_ms / 1000)
        return self._progress()

    def flush(self, timeout_ms: int) -> tuple[int | None, int, str | None]:
        self.producer.flush(max(timeout_ms, 0) / 1000)
        return self._progress()

    def _progress(self) -> tuple[int | None, int, str | None]:
        with self.lock:
            failures, self.failures = self.failures, 0
            token = None
            if self.acked > self.reported:
                token = self.reported = self.acked
            blocked = None
            if self.failed and self.acked + 1 in self.failed:
                blocked = self.failed[self.acked + 1]
        return token, failures, blocked

    def close(self) -> None:
        left = self.producer.flush(10)
        if left:
            self.ctx.log("warning", f"kafka producer closed with {left} undelivered messages (they are sent again on restart)")


class _RdKafkaLog:
    """librdkafka's log lines go to the plugin's log (confluent-kafka calls `log(level, fmt, *args)`)."""

    def __init__(self, ctx: IoContext) -> None:
        self.ctx = ctx

    def log(self, level: int, fmt: str, *args: Any) -> None:
        text = fmt % args if args else fmt
        self.ctx.log("error" if level >= 40 else "warning" if level >= 30 else "info" if level >= 20 else "debug", f"librdkafka: {text}")


# -- the module ---------------------------------------------------------------------------------
class KafkaModule:
    """Factory registered as `kafka` in hindsight_py/iomods/registry.py."""

    def __init__(self, ctx: IoContext) -> None:
        self.ctx = ctx
        self._next = 0
        self._consumers: dict[int, KafkaConsumer] = {}
        self._producers: dict[int, KafkaProducer] = {}

    def lua_api(self) -> Mapping[str, Callable[..., Any]]:
        return {
            "version": lambda: VERSION,
            "consumer_new": self.consumer_new,
            "receive": lambda h: self._consumer(h).receive(),
            "producer_new": self.producer_new,
            "create_topic": lambda h, t: self._producer(h).create_topic(_s(t)),
            "has_topic": lambda h, t: _s(t) in self._producer(h).topics,
            "destroy_topic": lambda h, t: self._producer(h).topics.pop(_s(t), None) and None,
            "send": lambda h, t, p, msg, key=None: self._producer(h).send(_s(t), int(p), msg, key),
            "poll": lambda h, ms=0: self._producer(h).poll(int(ms)),
            "flush": lambda h, ms=10000: self._producer(h).flush(int(ms)),
            "skip_failures": self._skip_failures,
            "in_flight": lambda h: self._producer(h).sent - self._producer(h).acked,
            "heka_json": self.heka_json,
            "log": lambda level, text: self.ctx.log(_s(level), _s(text)),
        }

    def _handle(self) -> int:
        self._next += 1
        return self._next

    def _consumer(self, h: int) -> KafkaConsumer:
        c = self._consumers.get(int(h))
        if c is None:
            raise ValueError("invalid kafka consumer")
        return c

    def _producer(self, h: int) -> KafkaProducer:
        p = self._producers.get(int(h))
        if p is None:
            raise ValueError("invalid kafka producer")
        return p

    def _skip_failures(self, h: int, on: bool) -> None:
        self._producer(h).skip_failures = bool(on)

    def consumer_new(self, brokerlist: bytes, ntopics: int, nconf: int, *rest: Any) -> int:
        """rest: `ntopics` topic strings, `nconf` consumer conf pairs, then the topic conf pairs."""
        ntopics, nconf = int(ntopics), int(nconf)
        topics = [_s(t) for t in rest[:ntopics]]
        conf = _pairs(rest[ntopics : ntopics + 2 * nconf])
        if "group.id" not in conf:
            raise ValueError("group.id must be set")
        conf.update(_pairs(rest[ntopics + 2 * nconf :]))  # librdkafka takes topic settings here too
        brokers = _s(brokerlist)
        for key in _OWNED_TRUE:
            if conf.get(key, "false").lower() == "true":
                raise ValueError(
                    f"{key} cannot be enabled: hsp commits offsets itself, once the messages are in its queue"
                )
        conf["enable.auto.commit"] = "false"
        conf["enable.auto.offset.store"] = "false"
        conf.pop("auto.commit.enable", None)
        full: dict[str, Any] = dict(conf)
        full["bootstrap.servers"] = brokers
        full["on_commit"] = self._on_commit
        full["error_cb"] = self._on_error
        full["logger"] = _RdKafkaLog(self.ctx)
        try:
            consumer = Consumer(full)
        except KafkaException as e:
            raise ValueError(_conf_error(e, conf)) from None
        try:
            _check_brokers(brokers)
            parsed = [_topic_partition(t) for t in topics]
        except ValueError:
            consumer.close()
            raise
        kc = KafkaConsumer(self.ctx, consumer)
        try:
            kc.start(parsed)
        except KafkaException as e:
            consumer.close()
            raise ValueError(f"rd_kafka_subscribe failed: {e}") from None
        h = self._handle()
        self._consumers[h] = kc
        return h

    def producer_new(self, brokerlist: bytes, *flat: Any) -> int:
        conf = _pairs(flat)
        brokers = _s(brokerlist)
        full: dict[str, Any] = dict(conf)
        full["bootstrap.servers"] = brokers
        full["error_cb"] = self._on_error
        full["logger"] = _RdKafkaLog(self.ctx)
        try:
            producer = Producer(full)
        except KafkaException as e:
            raise ValueError(_conf_error(e, conf)) from None
        _check_brokers(brokers)
        ring = self.ctx.config.get("async_buffer_size", 0)
        ring = int(ring) if isinstance(ring, (int, float)) else 0
        h = self._handle()
        self._producers[h] = KafkaProducer(self.ctx, producer, max(ring - 1, 0))
        return h

    def heka_json(self, raw: bytes) -> tuple[Any, ...]:
        """A raw Heka message as the JSON object `hsp cat --json` prints (without the newline)."""
        try:
            msg = decode_message(raw)
        except DecodeError as e:
            return (None, str(e))
        return (json.dumps(message_to_json_obj(msg), separators=(",", ":")),)

    def _on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if err is not None:
            self.ctx.log("warning", f"kafka offset commit failed: {err.str()}")
        else:
            bad = [tp for tp in partitions if tp.error is not None]
            if bad:
                self.ctx.log("warning", f"kafka offset commit failed: {bad[0].error}")

    def _on_error(self, err: KafkaError) -> None:
        self.ctx.log("error" if err.fatal() else "warning", f"kafka: {err.str()}")

    def close(self) -> None:
        for c in list(self._consumers.values()):
            c.close()
        for p in list(self._producers.values()):
            p.close()
        self._consumers.clear()
        self._producers.clear()


def _topic_partition(t: str) -> TP:
    name, sep, part = t.partition(":")
    if not sep:
        return (t, -1)
    try:
        p = int(part)
    except ValueError:
        p = 0
    if p > 2**31 - 1:
        raise ValueError("invalid topic partition > INT32_MAX")
    if p < 0:
        raise ValueError("invalid topic partition < 0")
    return (name, p)
