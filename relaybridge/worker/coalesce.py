"""Token coalescing: how streamed tokens become ``run.delta`` pushes.

The first token of a run is pushed at once (time to first token is what a person
notices); after that, tokens that arrive within one flush interval are joined and
pushed together, so a fast agent costs the browser one message per interval instead
of one per token. ``interval == 0`` turns coalescing off: every token is a push.

Pure and clock-injected: the worker asks :meth:`TokenCoalescer.add` what to push
now and :meth:`TokenCoalescer.next_due` when to come back.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Delta:
    """One push to the browser: ``seq`` counts pushes of one run from 1."""

    run: str
    seq: int
    text: str


@dataclass(slots=True)
class _RunStream:
    seq: int = 0
    last_push: float | None = None
    pending: list[str] = field(default_factory=list)


class TokenCoalescer:
    def __init__(self, interval_s: float) -> None:
        if interval_s < 0:
            raise ValueError("the flush interval cannot be negative")
        self.interval_s = interval_s
        self._runs: dict[str, _RunStream] = {}

    def add(self, run: str, text: str, now: float) -> Delta | None:
        """Record a token; return the push to make now, if any."""
        stream = self._runs.setdefault(run, _RunStream())
        stream.pending.append(text)
        if stream.last_push is None or now - stream.last_push >= self.interval_s:
            return self._push(run, stream, now)
        return None

    def due(self, now: float) -> list[Delta]:
        """Pushes whose interval has passed."""
        pushes = []
        for run, stream in self._runs.items():
            ready = stream.last_push is not None and now - stream.last_push >= self.interval_s
            if stream.pending and ready:
                pushes.append(self._push(run, stream, now))
        return pushes

    def next_due(self) -> float | None:
        """The earliest time at which :meth:`due` will have something."""
        times = [
            stream.last_push + self.interval_s
            for stream in self._runs.values()
            if stream.pending and stream.last_push is not None
        ]
        return min(times) if times else None

    def due_at(self, run: str) -> float | None:
        """When ``run``'s pending text falls due (``None``: nothing is waiting)."""
        stream = self._runs.get(run)
        if stream is None or not stream.pending or stream.last_push is None:
            return None
        return stream.last_push + self.interval_s

    def flush(self, run: str, now: float) -> Delta | None:
        """Push whatever is pending for ``run`` now (before its reply or error)."""
        stream = self._runs.get(run)
        if stream is None or not stream.pending:
            return None
        return self._push(run, stream, now)

    def last_seq(self, run: str) -> int:
        stream = self._runs.get(run)
        return stream.seq if stream else 0

    def forget(self, run: str) -> None:
        self._runs.pop(run, None)

    def resume(self, run: str, seq: int) -> None:
        """Continue numbering after ``seq`` (a run adopted from an earlier worker)."""
        stream = self._runs.setdefault(run, _RunStream())
        stream.seq = max(stream.seq, seq)

    def __contains__(self, run: object) -> bool:
        return run in self._runs

    def _push(self, run: str, stream: _RunStream, now: float) -> Delta:
        stream.seq += 1
        stream.last_push = now
        text = "".join(stream.pending)
        stream.pending.clear()
        return Delta(run=run, seq=stream.seq, text=text)
