"""Pushes to the pages' groups, the ones waiting at the same moment in one round trip.

channels_redis's Pub/Sub layer publishes one message at a time per Redis server: each
``group_send`` takes the server's lock, sends ``PUBLISH`` and waits for the answer
before the next may go. The relay worker pushes every stream of the deployment
through that one connection, so when a hundred answers start together their first
tokens queued behind one another: the last one reached its pages 60-80 ms late while
the tokens in the middle of the answers, spread over time, took a few milliseconds.

:class:`GroupPushes` sends whatever is waiting when a round trip ends as one pipeline
of ``PUBLISH`` commands, on the layer's own connection, under its lock, with the
layer's own channel names and serialization, so the pages' consumers see the very
messages ``group_send`` would have sent. Pushes of one run stay in order: a run's
stream waits for each push before the next. Any other layer (or a channels_redis
whose internals differ from those this relies on) gets plain ``group_send`` calls.
"""

from __future__ import annotations

import logging
from typing import Any

from channels.layers import BaseChannelLayer

from ..batching import RoundTrips
from ..streams import GroupMessage

logger = logging.getLogger("relaybridge.worker")


class _Pipelined:
    """The parts of a channels_redis Pub/Sub layer (in this event loop) a pipeline needs."""

    def __init__(self, layer: Any) -> None:
        loop_layer = layer._get_layer()
        # Looked up now, so that a channels_redis without them is found out at once
        # (AttributeError), not by every push failing.
        self.channel_name = loop_layer._get_group_channel_name
        self.shard_of = loop_layer._get_shard
        self.serialize = layer.serialize
        shard = self.shard_of(self.channel_name("relaybridge"))
        for name in ("_lock", "_ensure_redis"):
            getattr(shard, name)

    @classmethod
    def of(cls, layer: BaseChannelLayer) -> _Pipelined | None:
        try:
            from channels_redis.pubsub import RedisPubSubChannelLayer
        except ImportError:
            return None
        if not isinstance(layer, RedisPubSubChannelLayer):
            return None
        try:
            return cls(layer)
        except AttributeError:
            logger.warning("channels_redis has changed: pushing one group_send at a time")
            return None

    async def publish(self, shard: Any, messages: list[tuple[str, bytes]]) -> None:
        async with shard._lock:
            shard._ensure_redis()
            async with shard._redis.pipeline(transaction=False) as pipe:
                for channel, payload in messages:
                    pipe.publish(channel, payload)
                await pipe.execute()


class GroupPushes:
    """``group_send`` for the worker's pushes: pipelined on the Pub/Sub layer."""

    def __init__(self, layer: BaseChannelLayer) -> None:
        self.layer = layer
        self._pipelined: _Pipelined | bool | None = False  # False: not looked up yet
        self._round_trips: RoundTrips[tuple[str, GroupMessage], None] = RoundTrips(self._send)

    @property
    def pipelined(self) -> bool:
        """Whether pushes go out in pipelines (known after the first push)."""
        return isinstance(self._pipelined, _Pipelined)

    async def group_send(self, group: str, message: GroupMessage) -> None:
        if self._pipelined is False:
            self._pipelined = _Pipelined.of(self.layer)
        if isinstance(self._pipelined, _Pipelined):
            await self._round_trips((group, message))
        else:
            await self.layer.group_send(group, message)

    async def _send(self, batch: list[tuple[str, GroupMessage]]) -> list[Exception | None]:
        pipelined = self._pipelined
        assert isinstance(pipelined, _Pipelined)
        results: list[Exception | None] = [None] * len(batch)
        by_shard: dict[int, tuple[Any, list[tuple[str, bytes]], list[int]]] = {}
        for n, (group, message) in enumerate(batch):
            try:
                channel = pipelined.channel_name(group)
                payload = pipelined.serialize(message)
            except Exception as exc:  # this message's own trouble, told to its pusher
                results[n] = exc
                continue
            shard = pipelined.shard_of(channel)
            entry = by_shard.setdefault(id(shard), (shard, [], []))
            entry[1].append((channel, payload))
            entry[2].append(n)
        for shard, messages, positions in by_shard.values():
            try:
                await pipelined.publish(shard, messages)
            except Exception as exc:
                for n in positions:
                    results[n] = exc
        return results
