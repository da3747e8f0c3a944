"""Quotas: limits on runs and tokens per person, agent or thread, per hour or day.

``RELAYBRIDGE_QUOTAS`` is a list of rules, each a dict::

    {"scope": "person", "runs": 20, "per": "hour"}              # each person, all agents
    {"scope": "person", "agent": "athena", "tokens": 50_000, "per": "day"}
    {"scope": "agent", "agent": "deploy-bot", "runs": 10, "per": "day"}
    {"scope": "agent", "runs": 500, "per": "day"}                # each agent on its own
    {"scope": "thread", "runs": 30, "per": "hour"}               # each thread, all agents

``scope`` says whose runs are counted together: a person's (the person a run is
charged to: who asked, or the person at the start of a chain of agent hops), an
agent's, or a thread's. ``agent`` (optional) narrows the rule to one agent's runs.
Exactly one of ``runs`` and ``tokens`` (a positive integer) is the limit, and ``per``
its window: ``hour`` or ``day``, rolling (the last 60 minutes, the last 24 hours).
Tokens are what Relay's replies reported (``tokens_used``); a reply that takes the
total past the limit is kept, and the runs after it are refused until enough of the
window's tokens have aged out.

A run no rule admits is created ``refused`` (code ``RELAYBRIDGE_QUOTA``) with a
sentence saying whose limit it is and when it resets ("Athena's limit for you is
reached — it resets at 14:05.", in the active time zone). Refused runs count
against nothing.

Race safety: a mention's counters are read under row locks, one
:class:`~relaybridge.models.QuotaGate` row per counted key, taken with
``SELECT … FOR UPDATE`` in sorted key order (so two posts never wait on each other
in a cycle) and held until the runs are inserted and committed. Two posts at once
then count one after the other, and cannot both take the last run a limit allows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from django.db import connection
from django.db.models import Count, QuerySet, Sum
from django.utils import timezone
from django.utils.translation import gettext

PERIODS: Final = {"hour": 3600, "day": 86400}
SCOPES: Final = ("person", "agent", "thread")
MEASURES: Final = ("runs", "tokens")
_KEYS: Final = frozenset({"scope", "agent", "per", *MEASURES})


@dataclass(frozen=True, slots=True)
class QuotaRule:
    """One validated entry of ``RELAYBRIDGE_QUOTAS``."""

    scope: str
    measure: str
    limit: int
    per: str
    agent: str | None = None

    @property
    def seconds(self) -> int:
        return PERIODS[self.per]

    def applies_to(self, agent_id: str) -> bool:
        return self.agent is None or self.agent.lower() == agent_id.lower()

    def describe(self) -> str:
        """``20 runs per person per hour``, ``50000 tokens per person per day (@athena)``."""
        text = f"{self.limit} {self.measure} per {self.scope} per {self.per}"
        return f"{text} (@{self.agent})" if self.agent else text


def quota_problems(value: Any) -> list[str]:
    """What is wrong with a ``RELAYBRIDGE_QUOTAS`` value, for check relaybridge.E006."""
    if not isinstance(value, list | tuple):
        return ["RELAYBRIDGE_QUOTAS must be a list of rules (dicts)"]
    problems = []
    for index, rule in enumerate(value):
        where = f"RELAYBRIDGE_QUOTAS[{index}]"
        if not isinstance(rule, Mapping):
            problems.append(f"{where} must be a dict")
            continue
        unknown = sorted(str(key) for key in rule if key not in _KEYS)
        if unknown:
            problems.append(f"{where} has unknown keys {unknown} (known: {sorted(_KEYS)})")
        if rule.get("scope") not in SCOPES:
            problems.append(f"{where}['scope'] must be one of {list(SCOPES)}")
        if rule.get("per") not in PERIODS:
            problems.append(f"{where}['per'] must be one of {list(PERIODS)}")
        measures = [measure for measure in MEASURES if measure in rule]
        if len(measures) != 1:
            problems.append(f"{where} must have exactly one of 'runs' and 'tokens'")
        else:
            limit = rule[measures[0]]
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                problems.append(f"{where}[{measures[0]!r}] must be a positive integer")
        agent = rule.get("agent")
        if agent is not None and (not isinstance(agent, str) or not agent.strip()):
            problems.append(f"{where}['agent'] must be an agent id")
    return problems


def parse_rules(value: Any) -> list[QuotaRule]:
    """The rules of ``value``; ValueError when any is invalid (see :func:`quota_problems`)."""
    problems = quota_problems(value)
    if problems:
        raise ValueError("; ".join(problems))
    rules = []
    for rule in value:
        measure = "runs" if "runs" in rule else "tokens"
        agent = rule.get("agent")
        rules.append(
            QuotaRule(
                scope=rule["scope"],
                measure=measure,
                limit=int(rule[measure]),
                per=rule["per"],
                agent=agent.strip() if agent else None,
            )
        )
    return rules


def quota_rules() -> list[QuotaRule]:
    """The rules in force (``RELAYBRIDGE_QUOTAS``)."""
    from .conf import relay_settings

    return parse_rules(relay_settings.get("QUOTAS"))


@dataclass(frozen=True, slots=True)
class Subject:
    """Whose runs a new run would count with: the person charged and the thread."""

    person_id: Any
    thread_key: str


def counter_key(rule: QuotaRule, agent_id: str, subject: Subject) -> str | None:
    """The gate key a rule counts ``agent_id``'s new run under; None: the rule does not count it."""
    if not rule.applies_to(agent_id):
        return None
    narrowed = (rule.agent or "*").lower()
    if rule.scope == "person":
        if subject.person_id is None:
            return None  # no person asked (an import): only agent and thread rules hold
        return f"person:{subject.person_id}:{narrowed}"
    if rule.scope == "agent":
        return f"agent:{agent_id.lower()}"
    return f"thread:{subject.thread_key}:{narrowed}"[:300]


def counted_runs(
    rule: QuotaRule, agent_id: str, subject: Subject, since: datetime
) -> QuerySet[Any]:
    """The runs ``rule`` counts for ``agent_id``'s new run: not refused, queued after ``since``."""
    from .models import AgentRun

    runs = AgentRun.objects.filter(queued_at__gt=since).exclude(status=AgentRun.Status.REFUSED)
    if rule.scope == "person":
        runs = runs.filter(charged_to_id=subject.person_id)
    elif rule.scope == "agent":
        runs = runs.filter(agent_id=agent_id)
    else:
        runs = runs.filter(thread_key=subject.thread_key)
    if rule.agent is not None and rule.scope != "agent":
        runs = runs.filter(agent_id__iexact=rule.agent)
    return runs


def lock_gates(keys: Iterable[str], now: datetime) -> None:
    """Lock one :class:`QuotaGate` row per key, in sorted order, to the end of the transaction."""
    from .models import QuotaGate

    wanted = sorted(set(keys))
    if not wanted:
        return
    if not connection.in_atomic_block:
        raise RuntimeError("quota counters must be read inside a transaction (they hold locks)")
    QuotaGate.objects.bulk_create(
        [QuotaGate(key=key, locked_at=now) for key in wanted], ignore_conflicts=True
    )
    gates = QuotaGate.objects.filter(key__in=wanted).order_by("key")
    if connection.features.has_select_for_update:
        list(gates.select_for_update().values_list("id", flat=True))
    else:
        # SQLite: a write takes the database's write lock, which serializes the counts.
        gates.update(locked_at=now)


@dataclass(slots=True)
class Usage:
    """A counter's runs and tokens in its window."""

    runs: int = 0
    tokens: int = 0


@dataclass(frozen=True, slots=True)
class QuotaRefusal:
    rule: QuotaRule
    resets_at: datetime


@dataclass
class QuotaCounter:
    """Counts a mention's runs against the rules, the runs it admits included.

    ``lock=True`` (creating runs, inside their transaction) takes the gates' locks
    before counting; ``lock=False`` (the preview) only reads.
    """

    rules: list[QuotaRule]
    subject: Subject
    now: datetime
    lock: bool = True
    _used: dict[tuple[QuotaRule, str], Usage] = field(default_factory=dict)
    _added: dict[str, int] = field(default_factory=dict)

    def prepare(self, agent_ids: Iterable[str]) -> None:
        """Take the locks of every counter these agents' runs count under (one batch)."""
        if not self.lock:
            return
        keys = {
            key
            for agent_id in agent_ids
            for rule in self.rules
            if (key := counter_key(rule, agent_id, self.subject)) is not None
        }
        lock_gates(keys, self.now)

    def check(self, agent_id: str) -> QuotaRefusal | None:
        """Why one more run of ``agent_id`` is over a limit, or None if it may run."""
        for rule in self.rules:
            key = counter_key(rule, agent_id, self.subject)
            if key is None:
                continue
            usage = self._usage(rule, agent_id, key)
            used = usage.runs + self._added.get(key, 0) if rule.measure == "runs" else usage.tokens
            if used >= rule.limit:
                return QuotaRefusal(rule, self._resets_at(rule, agent_id, used))
        return None

    def admit(self, agent_id: str) -> None:
        """Count a run this mention creates, for the agents after it."""
        for rule in self.rules:
            key = counter_key(rule, agent_id, self.subject)
            if key is not None:
                self._added[key] = self._added.get(key, 0) + 1

    def _since(self, rule: QuotaRule) -> datetime:
        return self.now - timedelta(seconds=rule.seconds)

    def _usage(self, rule: QuotaRule, agent_id: str, key: str) -> Usage:
        cached = self._used.get((rule, key))
        if cached is None:
            totals = counted_runs(rule, agent_id, self.subject, self._since(rule)).aggregate(
                runs=Count("id"), tokens=Sum("tokens_used")
            )
            cached = Usage(runs=totals["runs"] or 0, tokens=totals["tokens"] or 0)
            self._used[(rule, key)] = cached
        return cached

    def _resets_at(self, rule: QuotaRule, agent_id: str, used: int) -> datetime:
        """When enough of the window's oldest runs age out for one more run to fit."""
        runs = counted_runs(rule, agent_id, self.subject, self._since(rule)).order_by(
            "queued_at", "id"
        )
        window = timedelta(seconds=rule.seconds)
        if rule.measure == "runs":
            # used - limit + 1 runs must leave the window; the last of them sets the time.
            oldest: list[datetime] = list(
                runs.values_list("queued_at", flat=True)[used - rule.limit :][:1]
            )
            return (oldest[0] + window) if oldest else self.now + window
        left = used
        for queued_at, tokens in runs.values_list("queued_at", "tokens_used").iterator():
            left -= tokens or 0
            if left < rule.limit:
                at: datetime = queued_at + window
                return at
        return self.now + window


def refusal_reason(refusal: QuotaRefusal, agent_name: str, now: datetime | None = None) -> str:
    """What a person reads: whose limit it is, and when it resets (local time)."""
    now = now or timezone.now()
    at = timezone.localtime(refusal.resets_at)
    clock = at.strftime("%H:%M")
    if at.date() == timezone.localtime(now).date():
        when = gettext("at %(time)s") % {"time": clock}
    else:
        when = gettext("tomorrow at %(time)s") % {"time": clock}
    values = {"agent": agent_name, "when": when}
    if refusal.rule.scope == "person":
        return gettext("%(agent)s's limit for you is reached — it resets %(when)s.") % values
    if refusal.rule.scope == "thread":
        return gettext("%(agent)s's limit in this thread is reached — it resets %(when)s.") % values
    return gettext("%(agent)s's limit is reached — it resets %(when)s.") % values
