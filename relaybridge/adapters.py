"""The host-comment adapter: the one seam between relaybridge and the host's models.

relaybridge owns no tasks or comments. The host names its comment model
(``RELAYBRIDGE_COMMENT_MODEL``) and an adapter class (``RELAYBRIDGE_ADAPTER``, a
dotted path) that answers every question relaybridge asks about them: a comment's
text, its thread (the object whose page shows the stream, e.g. a task), the
thread's stable Relay id, the payload context, who may watch a thread, who may
Stop and Retry a run, and how an agent's reply is saved.

:class:`DefaultCommentAdapter` covers the common shape -- a comment with a text
field, a foreign key to its thread, a nullable author and an ``agent_id`` -- through
settings alone (``RELAYBRIDGE_BODY_FIELD``, ``_THREAD_FIELD``, ``_AUTHOR_FIELD``,
``_AGENT_FIELD``, ``_CREATED_FIELD``, ``_THREAD_TITLE_FIELD``, ``_THREAD_ID_PREFIX``).
Anything else: subclass it (or :class:`CommentAdapter`) and point
``RELAYBRIDGE_ADAPTER`` at the class. Override :meth:`CommentAdapter.can_view` to
apply the host's own permissions to the live stream,
:meth:`CommentAdapter.can_control` to those of its Stop and Retry buttons, and
:meth:`CommentAdapter.can_mention` to decide who may call which agent.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, TypedDict

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured, ValidationError
from django.db import models
from django.utils.module_loading import import_string

from .agents import agent_name
from .conf import redact, relay_settings

if TYPE_CHECKING:
    from .models import AgentRun


#: Lets its holders Stop and Retry anyone's runs (see :meth:`CommentAdapter.can_control`).
CONTROL_PERMISSION = "relaybridge.control_agentrun"


class Sender(TypedDict):
    id: str
    name: str


class HistoryEntry(TypedDict):
    author: str
    text: str


class PayloadContext(TypedDict):
    task_title: str
    sender: Sender
    comments: list[HistoryEntry]


class CommentAdapter:
    """What relaybridge needs from the host. Subclasses implement the abstract methods."""

    def comment_model(self) -> type[models.Model]:
        label = relay_settings.COMMENT_MODEL
        if label is None:  # check relaybridge.E003 says so, with the remedy
            raise LookupError("RELAYBRIDGE_COMMENT_MODEL is not set")
        return apps.get_model(label)

    def check(self) -> list[str]:
        """Problems with the host's models, reported by system check relaybridge.E003."""
        return []

    def handles(self, comment: Any) -> bool:
        """Does ``comment`` belong to a thread relaybridge serves? Default: every comment.

        Asked first by every receiver (``pre_save``, ``post_save``,
        ``comment_mention``), for every comment of the model saved anywhere on the
        site: a comment it says no to is neither redacted, nor parsed for mentions,
        nor run. Keep it cheap -- no query, or one at most (e.g. compare a content
        type id with a cached ``ContentType``).
        """
        return True

    def text(self, comment: Any) -> str:
        raise NotImplementedError

    def thread_for(self, comment: Any) -> Any:
        raise NotImplementedError

    def thread_id(self, thread: Any) -> str:
        """Relay's ``thread_id``: stable, so the agent keeps context across mentions."""
        raise NotImplementedError

    def thread_key(self, thread: Any) -> str:
        """relaybridge's key for the thread's channel-layer group and its URL."""
        raise NotImplementedError

    def comment_thread_key(self, comment: Any) -> str:
        """``thread_key(thread_for(comment))``, which pages ask for every comment.

        Override it when that can be known without loading the thread (a foreign
        key's id, a generic relation's content type and object id): the runs of a
        page of comments then cost one query in all.
        """
        return self.thread_key(self.thread_for(comment))

    def thread_by_key(self, key: str) -> Any | None:
        raise NotImplementedError

    def thread_title(self, thread: Any) -> str:
        return str(thread)

    def sender(self, comment: Any) -> Sender:
        raise NotImplementedError

    def requested_by(self, comment: Any) -> Any | None:
        """The user who asked (a comment's author), recorded on its runs."""
        return None

    def is_agent_comment(self, comment: Any) -> str | None:
        """The agent id when an agent wrote ``comment``, else None."""
        raise NotImplementedError

    def history(self, comment: Any, limit: int) -> list[HistoryEntry]:
        """Up to ``limit`` comments before ``comment`` in its thread, oldest first."""
        return []

    def payload_context(self, comment: Any) -> PayloadContext:
        return PayloadContext(
            task_title=self.thread_title(self.thread_for(comment)),
            sender=self.sender(comment),
            comments=self.history(comment, relay_settings.HISTORY_COMMENTS),
        )

    def can_view(self, user: Any, thread: Any) -> bool:
        """May ``user`` watch ``thread``'s live stream? Default: any active, signed-in user.

        Hosts with per-object permissions override this; the WebSocket consumer
        refuses everyone else.
        """
        return bool(getattr(user, "is_authenticated", False) and getattr(user, "is_active", False))

    def can_mention(self, user: Any, agent_id: str, thread: Any) -> bool:
        """May ``user`` call ``agent_id`` in ``thread``? Default: see below.

        Asked when runs are created (a refused mention ends as a ``refused`` run
        with the reason), and by the comment box's autocomplete and preview. For a
        run agents' replies led to, ``user`` is the person at the start of the
        chain (None when no person started it).

        The default lets everyone call an agent that ``RELAYBRIDGE_AGENT_PERMISSIONS``
        does not name; one it names needs that permission, globally or on the
        thread (``user.has_perm(perm) or user.has_perm(perm, thread)``, so
        object-permission backends such as django-guardian work). Keep it cheap:
        it is asked once per mentioned agent.
        """
        perm = agent_permission(agent_id)
        if perm is None:
            return True
        if user is None or not getattr(user, "is_active", False):
            return False
        return bool(user.has_perm(perm) or user.has_perm(perm, thread))

    def can_control(self, user: Any, run: AgentRun) -> bool:
        """May ``user`` press Stop and Retry on ``run``? Default: the person who asked
        (the run's ``requested_by``), staff, and holders of the permission
        ``relaybridge.control_agentrun``; never an anonymous or inactive user.

        The Retry and Stop views refuse everyone else (after ``can_view`` on the
        run's thread), and pages show them no buttons. Asked for every run a page
        shows, so keep it cheap: the default compares ids before it asks the
        permission backends (cached on the user object).
        """
        if not (getattr(user, "is_authenticated", False) and getattr(user, "is_active", False)):
            return False
        if run.requested_by_id is not None and run.requested_by_id == user.pk:
            return True
        if getattr(user, "is_staff", False):
            return True
        return bool(user.has_perm(CONTROL_PERMISSION))

    def save_reply(self, run: AgentRun, text: str) -> Any:
        """Save ``text`` as a comment by ``run.agent_id`` on the run's thread."""
        raise NotImplementedError

    def agent_display_name(self, agent_id: str) -> str:
        return agent_name(agent_id)

    def redact_secrets(self, comment: Any) -> None:
        """Blank Relay tokens pasted into ``comment``'s text; called just before it is saved.

        The default changes nothing (it cannot know where the text lives); the
        payload sent to Relay is redacted whatever the adapter does.
        """


class DefaultCommentAdapter(CommentAdapter):
    """The adapter for a comment model shaped like the example project's ``tasks.Comment``."""

    def _field(self, model: type[models.Model], name: str) -> Any:
        return model._meta.get_field(name)

    def thread_model(self) -> type[models.Model]:
        field = self._field(self.comment_model(), relay_settings.THREAD_FIELD)
        related: type[models.Model] = field.related_model
        return related

    def check(self) -> list[str]:
        try:
            model = self.comment_model()
        except (LookupError, ValueError):
            return [f"comment model {relay_settings.COMMENT_MODEL!r} is not installed"]
        problems = []
        wanted = {
            "BODY_FIELD": (relay_settings.BODY_FIELD, None),
            "THREAD_FIELD": (relay_settings.THREAD_FIELD, models.ForeignKey),
            "AUTHOR_FIELD": (relay_settings.AUTHOR_FIELD, models.ForeignKey),
            "AGENT_FIELD": (relay_settings.AGENT_FIELD, models.CharField),
        }
        for setting, (name, kind) in wanted.items():
            try:
                field = self._field(model, name)
            except FieldDoesNotExist:
                problems.append(
                    f"{model._meta.label} has no field {name!r} (RELAYBRIDGE_{setting})"
                )
                continue
            if kind is not None and not isinstance(field, kind):
                problems.append(f"{model._meta.label}.{name} must be a {kind.__name__}")
        if not problems:
            author = self._field(model, relay_settings.AUTHOR_FIELD)
            if not author.null:
                problems.append(
                    f"{model._meta.label}.{author.name} must allow NULL: agents have no user"
                )
        return problems

    def text(self, comment: Any) -> str:
        return str(getattr(comment, relay_settings.BODY_FIELD) or "")

    def redact_secrets(self, comment: Any) -> None:
        text = getattr(comment, relay_settings.BODY_FIELD)
        if isinstance(text, str):
            setattr(comment, relay_settings.BODY_FIELD, redact(text))

    def thread_for(self, comment: Any) -> Any:
        return getattr(comment, relay_settings.THREAD_FIELD)

    def thread_id(self, thread: Any) -> str:
        prefix = relay_settings.THREAD_ID_PREFIX or thread._meta.model_name
        return f"{prefix}-{thread.pk}"

    def thread_key(self, thread: Any) -> str:
        return f"{thread._meta.app_label}.{thread._meta.model_name}.{thread.pk}"

    def comment_thread_key(self, comment: Any) -> str:
        parts = self._thread_key_parts(type(comment), relay_settings.THREAD_FIELD)
        if parts is None:
            return super().comment_thread_key(comment)
        # The key from the foreign key's id: no query for the thread.
        prefix, attname = parts
        return f"{prefix}{getattr(comment, attname)}"

    def _thread_key_parts(self, model: type[models.Model], name: str) -> tuple[str, str] | None:
        """The thread key's prefix and the foreign key's attribute name, or None when
        the key needs the thread itself; worked out once per comment model and field
        (a page asks for every comment)."""
        known: dict[tuple[type[models.Model], str], tuple[str, str] | None]
        known = self.__dict__.setdefault("_thread_key_parts_known", {})
        if (model, name) not in known:
            known[(model, name)] = self._work_out_thread_key_parts(model, name)
        return known[(model, name)]

    def _work_out_thread_key_parts(
        self, model: type[models.Model], name: str
    ) -> tuple[str, str] | None:
        if (
            type(self).thread_for is not DefaultCommentAdapter.thread_for
            or type(self).thread_key is not DefaultCommentAdapter.thread_key
        ):
            return None
        field = self._field(model, name)
        if not field.target_field.primary_key:
            return None  # a to_field: the key needs the pk
        meta = field.related_model._meta
        return f"{meta.app_label}.{meta.model_name}.", field.attname

    def thread_by_key(self, key: str) -> Any | None:
        model = self.thread_model()
        prefix = f"{model._meta.app_label}.{model._meta.model_name}."
        if not key.startswith(prefix):
            return None
        try:
            return model._default_manager.filter(pk=key[len(prefix) :]).first()
        except (ValueError, TypeError, ValidationError):
            return None

    def thread_title(self, thread: Any) -> str:
        field = relay_settings.THREAD_TITLE_FIELD
        value = getattr(thread, field, None) if field else None
        return str(value) if value else str(thread)

    def is_agent_comment(self, comment: Any) -> str | None:
        return getattr(comment, relay_settings.AGENT_FIELD, "") or None

    def requested_by(self, comment: Any) -> Any | None:
        if self.is_agent_comment(comment):
            return None
        return getattr(comment, relay_settings.AUTHOR_FIELD, None)

    def author_name(self, comment: Any) -> str:
        agent_id = self.is_agent_comment(comment)
        if agent_id:
            return self.agent_display_name(agent_id)
        user = getattr(comment, relay_settings.AUTHOR_FIELD, None)
        if user is None:
            return "Someone"
        full_name = user.get_full_name() if hasattr(user, "get_full_name") else ""
        return str(full_name or user.get_username())

    def sender(self, comment: Any) -> Sender:
        agent_id = self.is_agent_comment(comment)
        if agent_id:
            return Sender(id=agent_id, name=self.author_name(comment))
        user = getattr(comment, relay_settings.AUTHOR_FIELD, None)
        return Sender(id=str(user.pk) if user else "", name=self.author_name(comment))

    def history(self, comment: Any, limit: int) -> list[HistoryEntry]:
        if limit <= 0:
            return []
        model = type(comment)
        thread_attname = self._field(model, relay_settings.THREAD_FIELD).attname
        created = relay_settings.CREATED_FIELD
        earlier = model._default_manager.filter(
            **{thread_attname: getattr(comment, thread_attname)}
        ).exclude(pk=comment.pk)
        if created and hasattr(comment, created):
            # Comments up to the mention: a retry hours later sees the same history.
            earlier = earlier.filter(**{f"{created}__lte": getattr(comment, created)})
            ordering = [f"-{created}", "-pk"]
        else:
            earlier = earlier.filter(pk__lt=comment.pk)
            ordering = ["-pk"]
        recent = list(
            earlier.select_related(relay_settings.AUTHOR_FIELD).order_by(*ordering)[:limit]
        )
        recent.reverse()
        return [HistoryEntry(author=self.author_name(c), text=self.text(c)) for c in recent]

    def save_reply(self, run: AgentRun, text: str) -> Any:
        model = self.comment_model()
        if type(self).thread_for is DefaultCommentAdapter.thread_for:
            # The same thread by its key: saving a reply then makes four queries,
            # not five (the fifth loaded the thread only to take its key).
            field = model._meta.get_field(relay_settings.THREAD_FIELD)
            attname = getattr(field, "attname", relay_settings.THREAD_FIELD)
            thread = {attname: getattr(run.comment, attname)}
        else:
            thread = {relay_settings.THREAD_FIELD: self.thread_for(run.comment)}
        reply = model(
            **{
                **thread,
                relay_settings.AUTHOR_FIELD: None,
                relay_settings.AGENT_FIELD: run.agent_id,
                relay_settings.BODY_FIELD: text,
            }
        )
        reply.save()
        return reply


def agent_permission(agent_id: str) -> str | None:
    """The permission ``RELAYBRIDGE_AGENT_PERMISSIONS`` requires to call ``agent_id``, if any."""
    wanted = agent_id.lower()
    for name, perm in relay_settings.AGENT_PERMISSIONS.items():
        if name.lower() == wanted:
            return perm
    return None


@functools.cache
def _load_adapter(path: str) -> CommentAdapter:
    try:
        adapter_class = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"RELAYBRIDGE_ADAPTER {path!r} cannot be imported: {exc}"
        ) from exc
    if not (isinstance(adapter_class, type) and issubclass(adapter_class, CommentAdapter)):
        raise ImproperlyConfigured(
            f"RELAYBRIDGE_ADAPTER {path!r} is not a subclass of relaybridge.adapters.CommentAdapter"
        )
    return adapter_class()


def get_adapter() -> CommentAdapter:
    """The configured adapter (one instance per dotted path)."""
    return _load_adapter(relay_settings.ADAPTER)
