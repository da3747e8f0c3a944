"""The agent directory: which agents this app may mention, from Relay's discovery.

The relay worker sends ``discover`` once per connection and stores the answer here,
in Django's cache (Redis in production), with the time it was fetched. Mentions,
the comment box's autocomplete and the admin read it. Until discovery has run once,
the allow-list ``RELAYBRIDGE_AGENTS`` stands in, so mentions work before a worker
has ever connected.

An agent that Relay refused (``NOT_ALLOWED``/``AGENT_NOT_FOUND``) stays listed but is
marked ``unavailable`` until the next discovery; mentioning it still creates a run,
which then fails visibly instead of being silently ignored.
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

from django.core.cache import caches

from .conf import redact, relay_settings
from .page_memo import forget, remembered


class AgentInfo(TypedDict):
    agent_id: str
    name: str
    description: str
    unavailable: bool


class AgentDirectory(TypedDict):
    fetched_at: float  # seconds since the epoch
    agents: list[AgentInfo]


def _cache() -> Any:
    return caches[relay_settings.CACHE_ALIAS]


#: Unicode categories that are never part of a name as shown: controls (C0, C1),
#: format characters (bidirectional overrides and isolates U+202A-U+202E and
#: U+2066-U+2069, the marks U+200E/U+200F, zero-width U+200B-U+200D, U+2060,
#: U+FEFF), line and paragraph separators, private use, surrogates, unassigned.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"})

#: A name or description longer than this is cut: Relay's text is bounded.
MAX_NAME_CHARS = 100
MAX_DESCRIPTION_CHARS = 500


def shown_text(text: str, limit: int) -> str:
    """``text`` from Relay as it may be shown beside an agent: no control, bidi or
    zero-width characters (so "Athena" + U+202E cannot pass for Athena), no secret,
    blanks collapsed, at most ``limit`` characters."""
    visible = "".join(
        " " if char.isspace() else char
        for char in text
        if char.isspace() or unicodedata.category(char) not in _INVISIBLE_CATEGORIES
    )
    return " ".join(redact(visible).split())[:limit]


def _disguised(agent_id: str) -> bool:
    """Whether the id holds blanks or characters that do not show as themselves."""
    return any(
        char.isspace() or unicodedata.category(char) in _INVISIBLE_CATEGORIES for char in agent_id
    )


def _agent_info(raw: Mapping[str, Any]) -> AgentInfo | None:
    agent_id = raw.get("agent_id")
    if not isinstance(agent_id, str) or not agent_id or _disguised(agent_id):
        return None
    name = raw.get("name")
    name = shown_text(name, MAX_NAME_CHARS) if isinstance(name, str) else ""
    description = raw.get("description")
    return AgentInfo(
        agent_id=agent_id,
        name=name or agent_id,
        description=(
            shown_text(description, MAX_DESCRIPTION_CHARS) if isinstance(description, str) else ""
        ),
        unavailable=bool(raw.get("unavailable", False)),
    )


def name_with_id(name: str, agent_id: str) -> str:
    """``name`` as shown beside the agent: with ``@agent_id`` when the name is not the id.

    A name is Relay's to choose; the id is what a mention calls. Shown together, a
    name cannot pass for another agent's.
    """
    if name.casefold() == agent_id.casefold():
        return name
    return f"{name} (@{agent_id})"


#: The directory's key in a page's (or a worker trip's) memo (:mod:`relaybridge.page_memo`).
DIRECTORY_MEMO_KEY = "agent_directory"


def get_directory() -> AgentDirectory | None:
    """The cached discovery result, or None when discovery has not run yet.

    Read once per page while relaybridge's tags draw one (:mod:`relaybridge.page_memo`).
    """
    return remembered(DIRECTORY_MEMO_KEY, _read_directory)


def _read_directory() -> AgentDirectory | None:
    value = _cache().get(relay_settings.AGENTS_CACHE_KEY)
    if not isinstance(value, dict) or not isinstance(value.get("agents"), list):
        return None
    agents = [info for raw in value["agents"] if (info := _agent_info(raw)) is not None]
    return AgentDirectory(fetched_at=float(value.get("fetched_at", 0.0)), agents=agents)


def store_directory(
    agents: Iterable[Mapping[str, Any]], fetched_at: float | None = None
) -> AgentDirectory:
    """Replace the directory with a fresh discovery answer (everyone available again)."""
    infos = []
    for raw in agents:
        info = _agent_info({**raw, "unavailable": False})
        if info is not None:
            infos.append(info)
    directory = AgentDirectory(
        fetched_at=time.time() if fetched_at is None else fetched_at, agents=infos
    )
    _write_directory(directory)
    return directory


def mark_unavailable(agent_id: str) -> bool:
    """Mark a discovered agent unavailable until the next discovery; False if unknown."""
    directory = _read_directory()  # not a page's copy: this one is stored again
    if directory is None:
        return False
    found = False
    for info in directory["agents"]:
        if info["agent_id"] == agent_id:
            info["unavailable"] = True
            found = True
    if found:
        _write_directory(directory)
    return found


def _write_directory(directory: AgentDirectory) -> None:
    """Store the directory; a memo in force (a page, a worker trip) reads it again."""
    # No expiry: the list is valid until the next discovery replaces it.
    _cache().set(relay_settings.AGENTS_CACHE_KEY, directory, None)
    forget(DIRECTORY_MEMO_KEY)


def known_agent_ids() -> list[str]:
    """Agent ids a mention may name: discovered ones, else the configured allow-list."""
    directory = get_directory()
    if directory is not None:
        return [info["agent_id"] for info in directory["agents"]]
    return relay_settings.AGENTS


def agent_name(agent_id: str) -> str:
    """A display name: the discovered name, else the id with a capital letter."""
    directory = get_directory()
    if directory is not None:
        for info in directory["agents"]:
            if info["agent_id"] == agent_id:
                return info["name"]
    return agent_id[:1].upper() + agent_id[1:]


def mentionable_agents() -> list[AgentInfo]:
    """The agents a comment may mention, with names and descriptions when discovered."""
    directory = get_directory()
    if directory is not None:
        return list(directory["agents"])
    return [
        AgentInfo(agent_id=agent_id, name=agent_name(agent_id), description="", unavailable=False)
        for agent_id in relay_settings.AGENTS
    ]
