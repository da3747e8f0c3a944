"""Watchers: many pages open on Daphne, and one answer fanned out to them.

The pages are held by a separate client process (``python -m bench.watchers``, one
asyncio loop with the websockets library, so its CPU is not the driver's), signed in
with the session cookie a browser gets from the sign-in form. The driver tells it,
one JSON line at a time on its stdin, to open sockets, to wait until each has seen
an answer end, to hand over what they received and to close them; it answers each
command with one JSON line.

* **RSS per socket**: a Daphne process of its own per round, warmed with a few
  sockets; its resident set size (``/proc``), the lowest of a few samples, before
  and with ``sockets`` idle pages open on one task; the growth divided by the count.
* **Fan-out**: ``watchers`` pages on one task while an answer streams at 20
  tokens/s. The push is timed where the layer delivers it: the driver joins the
  task's group on the stream layer as one more member, so it gets each pushed
  ``run.delta`` when every Daphne does (same Redis, same clock). Per delta, the time
  from that push to the *last* page that received it; the round's figure is the
  p99 over its deltas. With two Daphne processes the pages are split between them,
  and a Stop pressed through one (the Stop view's POST) is timed to every page on
  the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from .stats import distribution, median, percentile

ROOT = Path(__file__).resolve().parent.parent
#: Sockets being opened at once (each is a handshake, a session lookup and a snapshot).
#: Daphne closes a handshake its application has not accepted within 5 s
#: (``--websocket_connect_timeout``), which a long queue of them reaches on a busy machine.
OPEN_AT_ONCE = 20
#: Tries per socket: a handshake Daphne dropped is tried again, as a page's script does.
ATTEMPTS = 4
#: Tokens per second of the answer the watchers see.
RATE = 20.0


def raise_fd_limit() -> int:
    """Raise this process's open-files soft limit to its hard limit; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# -- the client process ------------------------------------------------------------------


@dataclass
class _Page:
    url: str
    label: int
    conn: ClientConnection | None = None
    received: list[tuple[int, str]] = field(default_factory=list)
    snapshot: asyncio.Event = field(default_factory=asyncio.Event)
    replied: set[str] = field(default_factory=set)
    stopped: set[str] = field(default_factory=set)

    async def listen(self) -> None:
        assert self.conn is not None
        with contextlib.suppress(ConnectionClosed):
            async for message in self.conn:
                now = time.time_ns()
                text = message if isinstance(message, str) else message.decode()
                # Cheap checks only; parsing waits until the driver collects.
                if '"type": "snapshot"' in text:
                    self.snapshot.set()
                    continue
                self.received.append((now, text))
                if '"type": "run.reply"' in text:
                    self.replied.add(json.loads(text)["run"])
                elif '"status": "stopped"' in text:
                    self.stopped.add(json.loads(text)["run"])


class _Client:
    def __init__(self) -> None:
        self.pages: list[_Page] = []
        self.listeners: list[asyncio.Task[None]] = []

    async def open(self, urls: list[str], counts: list[int], cookie: str) -> dict[str, Any]:
        gate = asyncio.Semaphore(OPEN_AT_ONCE)
        errors: list[str] = []

        async def open_one(page: _Page, origin: str) -> None:
            async with gate:
                for attempt in range(ATTEMPTS):
                    try:
                        page.conn = await connect(
                            page.url,
                            additional_headers={"Cookie": cookie, "Origin": origin},
                            max_size=None,
                            ping_interval=None,
                            proxy=None,
                            open_timeout=60,
                        )
                        break
                    except Exception as exc:  # refused, reset, or closed mid-handshake
                        errors.append(repr(exc))
                        await asyncio.sleep(0.5 * (attempt + 1))
                if page.conn is None:
                    return
                self.listeners.append(asyncio.create_task(page.listen()))
                try:
                    async with asyncio.timeout(60):
                        await page.snapshot.wait()
                except TimeoutError:
                    errors.append("no snapshot within 60 s")

        new: list[tuple[_Page, str]] = []
        for label, (url, count) in enumerate(zip(urls, counts, strict=True)):
            origin = url.replace("ws://", "http://", 1).split("/ws/", 1)[0]
            new += [(_Page(url, label), origin) for _ in range(count)]
        began = time.monotonic()
        await asyncio.gather(*(open_one(page, origin) for page, origin in new))
        opened = [page for page, _ in new if page.conn is not None]
        self.pages += opened
        return {
            "opened": len(opened),
            "errors": errors[:5],
            # Failed attempts, including those a later attempt made good.
            "error_count": len(errors),
            "seconds": round(time.monotonic() - began, 2),
        }

    async def wait(self, replies: int, stopped: str, seconds: float) -> dict[str, Any]:
        """Until every page has seen ``replies`` replies in all, and run ``stopped``
        (if not empty) stop."""
        deadline = time.monotonic() + seconds
        behind = self.pages
        while time.monotonic() < deadline:
            behind = [
                p
                for p in self.pages
                if len(p.replied) < replies or (stopped and stopped not in p.stopped)
            ]
            if not behind:
                return {"behind": 0}
            await asyncio.sleep(0.02)
        return {"behind": len(behind)}

    def collect(self) -> dict[str, Any]:
        """Each page's deltas (run -> [[seq, ns]]) and stops (run -> ns) since the last."""
        found = []
        for page in self.pages:
            deltas: dict[str, list[list[int]]] = {}
            stops: dict[str, int] = {}
            for at, text in page.received:
                message = json.loads(text)
                kind = message.get("type")
                if kind == "run.delta":
                    deltas.setdefault(message["run"], []).append([message["seq"], at])
                elif kind == "run.status" and message.get("status") == "stopped":
                    stops.setdefault(message["run"], at)
            page.received.clear()
            found.append({"label": page.label, "deltas": deltas, "stops": stops})
        return {"pages": found}

    async def close(self) -> dict[str, Any]:
        await asyncio.gather(
            *(page.conn.close() for page in self.pages if page.conn is not None),
            return_exceptions=True,
        )
        await asyncio.gather(*self.listeners, return_exceptions=True)
        closed = len(self.pages)
        self.pages, self.listeners = [], []
        return {"closed": closed}


async def _serve() -> None:
    limit = raise_fd_limit()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    client = _Client()

    def answer(body: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(body) + "\n")
        sys.stdout.flush()

    answer({"ready": True, "fd_limit": limit})
    while line := await reader.readline():
        command = json.loads(line)
        op = command["op"]
        if op == "open":
            answer(await client.open(command["urls"], command["counts"], command["cookie"]))
        elif op == "wait":
            answer(await client.wait(command["replies"], command["stopped"], command["timeout"]))
        elif op == "collect":
            answer(client.collect())
        elif op == "close":
            answer(await client.close())
        else:
            answer({"error": f"unknown op {op!r}"})
    await client.close()


# -- the driver's side -------------------------------------------------------------------


class WatcherProcess:
    """The client process, driven by commands; ``async with`` starts and ends it."""

    def __init__(self) -> None:
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> WatcherProcess:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.watchers",
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            # One answer carries every page's deltas of a round.
            limit=1 << 28,
        )
        await self._read(60)
        return self

    async def __aexit__(self, *exc: object) -> None:
        process = self.process
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def _read(self, seconds: float) -> dict[str, Any]:
        assert self.process is not None and self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), seconds)
        if not line:
            raise RuntimeError("the watchers' client process exited")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer

    async def command(self, seconds: float = 600.0, **body: Any) -> dict[str, Any]:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write((json.dumps(body) + "\n").encode())
        await self.process.stdin.drain()
        return await self._read(seconds)

    async def open(self, login_cookie: str, urls: list[str], counts: list[int]) -> dict[str, Any]:
        opened = await self.command(op="open", urls=urls, counts=counts, cookie=login_cookie)
        if opened["opened"] != sum(counts):
            raise RuntimeError(f"only {opened['opened']} of {sum(counts)} pages opened: {opened}")
        return opened


class PushProbe:
    """One more member of a thread's group on the stream layer: when each delta was pushed."""

    def __init__(self, group: str) -> None:
        from channels.layers import get_channel_layer

        from relaybridge.conf import relay_settings

        self.group = group
        self.layer: Any = get_channel_layer(relay_settings.STREAM_LAYER)
        self.channel = ""
        self.pushed: dict[tuple[str, int], int] = {}
        self.task: asyncio.Task[None] | None = None
        #: Set at every push received.
        self.arrived = asyncio.Event()

    async def __aenter__(self) -> PushProbe:
        self.channel = await self.layer.new_channel("bench-probe.")
        await self.layer.group_add(self.group, self.channel)
        self.task = asyncio.create_task(self._listen())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.layer.group_discard(self.group, self.channel)

    async def _listen(self) -> None:
        while True:
            message = await self.layer.receive(self.channel)
            now = time.time_ns()
            event = message.get("event") or {}
            if message.get("type") == "relaybridge.run.delta":
                self.pushed.setdefault((event["run"], int(event["seq"])), now)
                self.arrived.set()

    def runs(self) -> set[str]:
        return {run for run, _ in self.pushed}

    def take(self) -> dict[tuple[str, int], int]:
        taken, self.pushed = self.pushed, {}
        return taken


#: How many of a round's slowest deltas the results name.
SLOWEST_SHOWN = 5


def fanout_round(pushed: dict[tuple[str, int], int], pages: list[dict[str, Any]]) -> dict[str, Any]:
    """Per delta: push -> the last page that got it; and push -> every page."""
    arrivals: dict[tuple[str, int], list[int]] = {}
    for page in pages:
        for run, pairs in page["deltas"].items():
            for seq, at in pairs:
                arrivals.setdefault((run, int(seq)), []).append(int(at))
    to_last: list[float] = []
    to_each: list[float] = []
    by_seq: list[tuple[int, float]] = []
    missing = 0
    for key, push in pushed.items():
        got = arrivals.get(key, [])
        missing += len(pages) - len(got)
        if got:
            to_last.append((max(got) - push) / 1e6)
            to_each += [(at - push) / 1e6 for at in got]
            by_seq.append((key[1], round(to_last[-1], 2)))
    slowest = sorted(by_seq, key=lambda pair: pair[1], reverse=True)[:SLOWEST_SHOWN]
    return {
        "deltas_pushed": len(pushed),
        "push_to_last_page_ms": distribution(to_last),
        # Where in the answer the p99 comes from: [seq, push -> last page ms], slowest first.
        "slowest_deltas": [list(pair) for pair in slowest],
        "push_to_each_page_ms": distribution(to_each),
        # A delta a page did not get on its own came in a status's text instead.
        "deliveries_missing": missing,
        "p99_ms": round(percentile(to_last, 99), 2),
    }


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


async def settled_rss_kb(pid: int, samples: int = 5, every_s: float = 0.4) -> int:
    found = []
    for _ in range(samples):
        found.append(rss_kb(pid))
        await asyncio.sleep(every_s)
    return min(found)


def spread(values: list[float]) -> list[float]:
    clean = [v for v in values if v == v]
    return [round(min(clean), 2), round(max(clean), 2)] if clean else []


def _thread_group(task_id: int) -> str:
    from project.tasks.models import Task
    from relaybridge.adapters import get_adapter
    from relaybridge.streams import group_name_for_thread

    return group_name_for_thread(get_adapter().thread_key(Task.objects.get(pk=task_id)))


async def rss_per_socket(stack: Any, cookie: str, *, sockets: int, rounds: int) -> dict[str, Any]:
    """Daphne's RSS growth per idle page socket; a fresh Daphne each round."""
    from . import actions

    [task_id] = await asyncio.to_thread(actions.create_tasks, 1, "Watchers, idle")
    per_round = []
    async with WatcherProcess() as client:
        for _ in range(rounds):
            base = await asyncio.to_thread(stack.deployment.start_daphne)
            daphne = stack.deployment.processes[-1]
            try:
                url = base.replace("http://", "ws://", 1) + f"/ws/tasks/{task_id}/"
                # Warm: the first sockets load the consumer's code and open connections.
                await client.open(cookie, [url], [min(10, sockets)])
                await client.command(op="close")
                before = await settled_rss_kb(daphne.pid)
                opened = await client.open(cookie, [url], [sockets])
                after = await settled_rss_kb(daphne.pid)
                await client.command(op="close")
            finally:
                # Killed: its state is of no interest, and a graceful stop waits seconds.
                await asyncio.to_thread(daphne.kill)
            per_round.append(
                {
                    "rss_kb_before": before,
                    "rss_kb_open": after,
                    "kb_per_socket": round((after - before) / sockets, 2),
                    "open_seconds": opened["seconds"],
                    "failed_attempts": opened["error_count"],
                }
            )
    values = [r["kb_per_socket"] for r in per_round]
    return {
        "sockets": sockets,
        "rounds": per_round,
        "kb_per_socket": median(values),
        "kb_per_socket_spread": spread(values),
    }


def _stop(base_url: str, cookie: str, run_id: str) -> int:
    csrf = dict(part.split("=", 1) for part in cookie.split("; "))["csrftoken"]
    request = urllib.request.Request(
        f"{base_url}/relaybridge/runs/{run_id}/stop/",
        data=b"",
        method="POST",
        headers={
            "Cookie": cookie,
            "X-CSRFToken": csrf,
            "Origin": base_url,
            "Referer": base_url + "/",
            "Accept": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


async def fanout(
    stack: Any,
    cookie: str,
    *,
    watchers: int,
    tokens: int,
    rounds: int,
    daphnes: int,
) -> dict[str, Any]:
    """``watchers`` pages on one task (split over ``daphnes`` processes), one answer
    at :data:`RATE` per round; with two, a Stop through the first timed on the second."""
    from . import actions

    [task_id] = await asyncio.to_thread(actions.create_tasks, 1, f"Watchers, {daphnes} Daphne")
    group = await asyncio.to_thread(_thread_group, task_id)
    await asyncio.to_thread(actions.close_connections)
    bases = [stack.daphne_url]
    extra = []
    for _ in range(daphnes - 1):
        bases.append(await asyncio.to_thread(stack.deployment.start_daphne))
        extra.append(stack.deployment.processes[-1])
    urls = [b.replace("http://", "ws://", 1) + f"/ws/tasks/{task_id}/" for b in bases]
    counts = [watchers // daphnes + (1 if n < watchers % daphnes else 0) for n in range(daphnes)]
    per_round: list[dict[str, Any]] = []
    stops: list[dict[str, Any]] = []
    answer_s = tokens / RATE
    try:
        async with WatcherProcess() as client, PushProbe(group) as probe:
            opened = await client.open(cookie, urls, counts)
            for n in range(rounds):
                start = time.time_ns() + int(0.5e9)
                body = f"@load tokens={tokens} rate={RATE:g} start={start}"
                await asyncio.to_thread(actions.mention, task_id, body)
                waited = await client.command(
                    op="wait", replies=n + 1, stopped="", timeout=answer_s + 60
                )
                pages = (await client.command(op="collect"))["pages"]
                result = fanout_round(probe.take(), pages)
                result["pages_behind"] = waited["behind"]
                per_round.append(result)
            if daphnes > 1:
                for _ in range(rounds):
                    stops.append(await _stop_round(client, probe, cookie, bases, task_id, rounds))
    finally:
        await asyncio.to_thread(actions.close_connections)
        for process in extra:
            await asyncio.to_thread(process.kill)
    values = [float(r["p99_ms"]) for r in per_round]
    found: dict[str, Any] = {
        "watchers": watchers,
        "daphne_processes": daphnes,
        "pages_per_daphne": counts,
        "open_seconds": opened["seconds"],
        "tokens": tokens,
        "rate": RATE,
        "flush_ms": stack.flush_ms,
        "rounds": per_round,
        "p99_ms": median(values),
        "p99_ms_spread": spread(values),
    }
    if stops:
        other = [float(s["to_other_daphne_ms"]["max"]) for s in stops]
        found["stop_rounds"] = stops
        found["stop_to_last_page_other_daphne_ms"] = median(other)
        found["stop_to_last_page_other_daphne_ms_spread"] = spread(other)
    return found


async def _stop_round(
    client: WatcherProcess,
    probe: PushProbe,
    cookie: str,
    bases: list[str],
    task_id: int,
    replies: int,
) -> dict[str, Any]:
    """An answer started, Stop pressed through the first Daphne after a few deltas."""
    from . import actions

    # Earlier stopped runs still stream (Relay cannot cancel): only a new run counts.
    earlier = probe.runs()
    body = f"@load tokens=100 rate={RATE:g}"
    await asyncio.to_thread(actions.mention, task_id, body)

    def new_run() -> str:
        counts: dict[str, int] = {}
        for run, _seq in list(probe.pushed):
            if run not in earlier:
                counts[run] = counts.get(run, 0) + 1
        return next((run for run, count in counts.items() if count >= 3), "")

    async with asyncio.timeout(60):
        while not (run_id := new_run()):
            probe.arrived.clear()
            await probe.arrived.wait()
    pressed = time.time_ns()
    status = await asyncio.to_thread(_stop, bases[0], cookie, run_id)
    answered = time.time_ns()
    waited = await client.command(op="wait", replies=replies, stopped=run_id, timeout=60)
    pages = (await client.command(op="collect"))["pages"]
    seen: dict[int, list[float]] = {}
    for page in pages:
        if run_id in page["stops"]:
            seen.setdefault(page["label"], []).append((page["stops"][run_id] - pressed) / 1e6)
    return {
        "stop_status": status,
        "stop_view_ms": round((answered - pressed) / 1e6, 2),
        "pages_behind": waited["behind"],
        "to_same_daphne_ms": distribution(seen.get(0, [])),
        "to_other_daphne_ms": distribution(seen.get(1, [])),
    }


def main() -> None:
    asyncio.run(_serve())


if __name__ == "__main__":
    os.environ.pop("DJANGO_SETTINGS_MODULE", None)
    main()
