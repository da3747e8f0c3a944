"""The queue of submissions waiting to be sent, fair across the people asking.

Every submission waits in the lane of its asker (:attr:`.outcomes.Submission.asker`;
the submissions no person asked for, ``None``, share one lane of their own). The
lanes take turns: the next send comes from the lane served longest ago, and a lane
that sends goes to the back of the rotation. A lane that appears (or empties and
fills again) joins at the back. Within a lane, submission order.

So a burst delays only the person who made it: anyone else's next submission waits
behind at most one send of each other waiting lane, whatever their queue lengths.
The turns happen inside the plan's pacing and the in-flight cap (the session checks
both before each send) and inside the (agent, thread) gate: a lane whose entries all
wait on a busy thread is passed over without losing its place.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeAlias

from .outcomes import RefState

if TYPE_CHECKING:
    from .submissions import Entry

#: Whose lane: the asker's key, or ``None`` for the shared lane of runs no person asked for.
Lane: TypeAlias = str | None


def _seq(entry: Entry) -> int:
    return entry.seq


class LaneQueue:
    """Queued entries by lane; the dict's order is the rotation, next to serve first.

    Sent entries stay in their lane until :meth:`compact` (one pass after a batch),
    and :func:`len` counts them until then, as the session's in-flight count expects.
    """

    def __init__(self) -> None:
        self._lanes: dict[Lane, list[Entry]] = {}
        self._size = 0
        self._served: set[Lane] = set()  # lanes holding sent entries until compact()

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def add(self, entry: Entry) -> None:
        """Append ``entry`` to its lane (a new lane joins the rotation at the back)."""
        self._lanes.setdefault(entry.sub.asker, []).append(entry)
        self._size += 1

    def insert(self, entry: Entry) -> None:
        """Put ``entry`` back in its lane at its place in submission order."""
        bisect.insort(self._lanes.setdefault(entry.sub.asker, []), entry, key=_seq)
        self._size += 1

    def remove(self, entry: Entry) -> None:
        lane = entry.sub.asker
        entries = self._lanes[lane]
        entries.remove(entry)
        self._size -= 1
        if not entries:
            del self._lanes[lane]

    def served(self, entry: Entry) -> None:
        """``entry`` was sent: its lane goes to the back of the rotation."""
        lane = entry.sub.asker
        self._lanes[lane] = self._lanes.pop(lane)
        self._served.add(lane)

    def compact(self) -> None:
        """Drop the entries sent since the last call; empty lanes leave the rotation."""
        for lane in self._served:
            kept = [entry for entry in self._lanes[lane] if entry.state is RefState.QUEUED]
            self._size -= len(self._lanes[lane]) - len(kept)
            if kept:
                self._lanes[lane] = kept  # keeps the lane's place in the rotation
            else:
                del self._lanes[lane]
        self._served.clear()

    def turns(self, blocked: Callable[[Entry], bool]) -> Iterator[Entry]:
        """The queued entries in the order they may go: one per lane per round.

        Each round visits the lanes in rotation order and offers each lane's oldest
        entry not ``blocked`` and not offered before; a lane with none left drops
        out. The caller sends an offered entry (and calls :meth:`served`) or stops
        asking. An entry ``blocked`` once stays passed over for the rest of the
        iteration: sending only ever closes gates. Each entry is looked at once.
        """
        cursors = dict.fromkeys(self._lanes, 0)
        while cursors:
            for lane in list(cursors):
                entries = self._lanes[lane]
                index = cursors[lane]
                while index < len(entries) and (
                    entries[index].state is not RefState.QUEUED or blocked(entries[index])
                ):
                    index += 1
                if index == len(entries):
                    del cursors[lane]
                    continue
                cursors[lane] = index + 1
                yield entries[index]

    def entries(self) -> list[Entry]:
        """Every queued entry, in submission order."""
        return sorted((e for lane in self._lanes.values() for e in lane), key=_seq)

    def lanes(self) -> list[Lane]:
        """The lanes with queued entries, next to serve first."""
        return list(self._lanes)
