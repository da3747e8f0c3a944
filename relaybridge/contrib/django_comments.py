"""The adapter for django-contrib-comments: agents answer comments on any model.

With django-contrib-comments a comment is attached to its object through a
generic relation (``content_type`` + ``object_pk``), so the thread of a comment is
the object it comments on -- a card, an article, a ticket -- and any model can be
a thread. The host sets::

    RELAYBRIDGE_COMMENT_MODEL = "django_comments.Comment"
    RELAYBRIDGE_ADAPTER = "relaybridge.contrib.django_comments.DjangoCommentsAdapter"
    RELAYBRIDGE_DJANGO_COMMENTS_MODELS = ["cards.card"]  # optional; default: every model

Agent replies need nothing in the host's schema: a reply is a comment with no
user, whose ``user_name`` is the agent's display name, and relaybridge knows it is
an agent's because it saved it (``AgentRun.reply_comment``). A person's comment
(one with a user) is recognised without a query; an anonymous one costs one
indexed query on the run ledger.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import prefetch_related_objects
from django.utils.translation import gettext as _

from ..adapters import CommentAdapter, HistoryEntry, Sender
from ..conf import redact, relay_settings

if TYPE_CHECKING:
    from django.contrib.contenttypes.models import ContentType

    from ..models import AgentRun

#: The attribute :meth:`DjangoCommentsAdapter.save_reply` sets on the reply it saves
#: (and a ledger lookup caches): the agent's id. The receivers that run while the
#: reply is saved -- before the run ledger points at it -- read it from there, and
#: templates read it after ``{% relaybridge_agent_authors comment_list %}``.
AGENT_MARK: Final = "relaybridge_agent_id"


def content_type(content_type_id: int) -> ContentType:
    """A content type from Django's cache (one query the first time per id)."""
    # Imported here: the template tags import this module in every project that
    # installs relaybridge, with or without the contenttypes app.
    from django.contrib.contenttypes.models import ContentType

    return ContentType.objects.get_for_id(content_type_id)


class DjangoCommentsAdapter(CommentAdapter):
    """django_comments' ``Comment`` (or the ``COMMENTS_APP``'s model) on any model."""

    # -- which comments take part -------------------------------------------------------

    def participating_models(self) -> frozenset[str] | None:
        """``app_label.model_name`` of the models whose comments take part; None: all."""
        labels = relay_settings.DJANGO_COMMENTS_MODELS
        return None if labels is None else frozenset(label.lower() for label in labels)

    def handles(self, comment: Any) -> bool:
        """Comments on the participating models (the content type comes from a cache)."""
        allowed = self.participating_models()
        if allowed is None:
            return True
        kind = content_type(comment.content_type_id)
        return f"{kind.app_label}.{kind.model}" in allowed

    def check(self) -> list[str]:
        needed = {
            "django_comments": "django_comments (pip install relaybridge[django-comments])",
            "django.contrib.sites": "django.contrib.sites (django_comments needs it)",
        }
        problems = [
            f"{what} is not in INSTALLED_APPS; DjangoCommentsAdapter needs it"
            for app, what in needed.items()
            if not apps.is_installed(app)
        ]
        if problems:
            return problems
        import django_comments

        model = django_comments.get_model()
        if model._meta.label_lower != (relay_settings.COMMENT_MODEL or "").lower():
            problems.append(
                f"RELAYBRIDGE_COMMENT_MODEL is {relay_settings.COMMENT_MODEL!r}, but "
                f"django_comments' comment model is {model._meta.label!r}"
            )
        problems.extend(self._scope_problems(relay_settings.get("DJANGO_COMMENTS_MODELS")))
        return problems

    def _scope_problems(self, labels: Any) -> list[str]:
        if labels is None:
            return []
        if isinstance(labels, str) or not isinstance(labels, Iterable):
            return ["RELAYBRIDGE_DJANGO_COMMENTS_MODELS must be a list of 'app_label.model_name'"]
        problems = []
        for label in labels:
            try:
                apps.get_model(str(label))
            except (LookupError, ValueError):
                problems.append(
                    f"RELAYBRIDGE_DJANGO_COMMENTS_MODELS names {label!r}, "
                    "which is not an installed model ('app_label.model_name')"
                )
        return problems

    # -- a comment and its thread -------------------------------------------------------

    def text(self, comment: Any) -> str:
        """The comment's text; none while it is held for moderation or once removed.

        So such a comment calls no agent (once approved and saved again, its mentions
        run then), while its pasted tokens are still blanked (``redact_secrets``).
        """
        if not comment.is_public or comment.is_removed:
            return ""
        return str(comment.comment or "")

    def redact_secrets(self, comment: Any) -> None:
        if isinstance(comment.comment, str):
            comment.comment = redact(comment.comment)

    def thread_for(self, comment: Any) -> Any:
        return comment.content_object

    def thread_id(self, thread: Any) -> str:
        # The app label keeps two apps' models of one name (blog.post, forum.post) apart.
        return f"{thread._meta.app_label}.{thread._meta.model_name}-{thread.pk}"

    def thread_key(self, thread: Any) -> str:
        return f"{thread._meta.app_label}.{thread._meta.model_name}.{thread.pk}"

    def comment_thread_key(self, comment: Any) -> str:
        # From the generic relation, without loading the object: a page's runs then
        # cost one query, however many comments it shows.
        kind = content_type(comment.content_type_id)
        return f"{kind.app_label}.{kind.model}.{comment.object_pk}"

    def thread_by_key(self, key: str) -> Any | None:
        parts = key.split(".", 2)
        if len(parts) != 3:
            return None
        app_label, model_name, pk = parts
        allowed = self.participating_models()
        if allowed is not None and f"{app_label}.{model_name}".lower() not in allowed:
            return None
        try:
            model: type[models.Model] = apps.get_model(app_label, model_name)
            return model._default_manager.filter(pk=pk).first()
        except (LookupError, ValueError, TypeError, ValidationError):
            return None

    # -- who wrote it -------------------------------------------------------------------

    def is_agent_comment(self, comment: Any) -> str | None:
        marked = getattr(comment, AGENT_MARK, None)
        if marked:
            return str(marked)
        if comment.pk is None or comment.user_id is not None:
            return None  # not saved yet, or a person's: agents have no user
        from ..models import AgentRun

        found = list(
            AgentRun.objects.filter(reply_comment_id=comment.pk).values_list("agent_id", flat=True)[
                :1
            ]
        )
        if not found:
            return None
        setattr(comment, AGENT_MARK, found[0])
        return found[0]

    def requested_by(self, comment: Any) -> Any | None:
        return comment.user if comment.user_id is not None else None

    def author_name(self, comment: Any, agent_id: str | None = None) -> str:
        if agent_id:
            return self.agent_display_name(agent_id)
        user = comment.user if comment.user_id is not None else None
        if user is not None:
            return str(user.get_full_name() or user.get_username())
        return str(comment.user_name or _("Someone"))

    def sender(self, comment: Any) -> Sender:
        agent_id = self.is_agent_comment(comment)
        if agent_id:
            return Sender(id=agent_id, name=self.author_name(comment, agent_id))
        user_id = comment.user_id
        return Sender(id=str(user_id) if user_id else "", name=self.author_name(comment))

    def history(self, comment: Any, limit: int) -> list[HistoryEntry]:
        """The public comments on the same object up to ``comment``, oldest first."""
        if limit <= 0:
            return []
        earlier = (
            type(comment)
            ._default_manager.filter(
                content_type_id=comment.content_type_id,
                object_pk=comment.object_pk,
                site_id=comment.site_id,
                is_public=True,
                is_removed=False,
                # Up to the mention: a retry hours later sees the same history.
                submit_date__lte=comment.submit_date,
            )
            .exclude(pk=comment.pk)
            .select_related("user")
            .order_by("-submit_date", "-pk")
        )
        recent = list(earlier[:limit])
        recent.reverse()
        agents = self._agents_of(c.pk for c in recent if c.user_id is None)
        return [
            HistoryEntry(author=self.author_name(c, agents.get(c.pk)), text=self.text(c))
            for c in recent
        ]

    def mark_agent_comments(self, comments: Iterable[Any]) -> None:
        """Prepare a page's comments: mark the agents' ones and load what they are on.

        Sets ``relaybridge_agent_id`` on the comments agents wrote (one query for
        the list) and fetches the commented objects once per content type, so that
        ``{% relaybridge_runs comment %}`` costs no query per comment.
        """
        comments = list(comments)
        prefetch_related_objects(comments, "content_object")
        agents = self._agents_of(c.pk for c in comments if c.user_id is None)
        for comment in comments:
            if comment.pk in agents:
                setattr(comment, AGENT_MARK, agents[comment.pk])

    def _agents_of(self, comment_ids: Iterable[Any]) -> dict[Any, str]:
        """Which of these comments agents wrote: one query for a whole history."""
        from ..models import AgentRun

        ids = list(comment_ids)
        if not ids:
            return {}
        rows = AgentRun.objects.filter(reply_comment_id__in=ids).values_list(
            "reply_comment_id", "agent_id"
        )
        return dict(rows)

    # -- the reply ----------------------------------------------------------------------

    def save_reply(self, run: AgentRun, text: str) -> Any:
        """A comment by the agent on the object the mention comments on.

        No user; the agent's display name as ``user_name``; the current site
        (``SITE_ID``, else the mention's); public. The object is named by the
        mention's ``content_type`` and ``object_pk`` rather than loaded.
        """
        mention = run.comment
        model = self.comment_model()
        name_length = getattr(model._meta.get_field("user_name"), "max_length", None) or 50
        reply = model(
            content_type_id=mention.content_type_id,
            object_pk=mention.object_pk,
            site_id=getattr(settings, "SITE_ID", None) or mention.site_id,
            user=None,
            user_name=self.agent_display_name(run.agent_id)[:name_length],
            comment=text,
            is_public=True,
            is_removed=False,
        )
        # Read by is_agent_comment() while the reply is saved, before the ledger links it.
        setattr(reply, AGENT_MARK, run.agent_id)
        reply.save()
        return reply
