"""Replies relaybridge saves run agents only through the agent-hop rules, whatever the adapter says.

The incident these guard against: an adapter recorded "this comment is by Athena"
right after saving the reply, so the reply -- quoting "@athena …" -- asked Athena
again, at hop depth 0, over and over.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from project.tasks.models import Comment
from relaybridge import services
from relaybridge.adapters import _load_adapter
from relaybridge.models import AgentRun
from relaybridge.signals import comment_mention

pytestmark = pytest.mark.django_db

MakeComment = Callable[..., Comment]
ADAPTERS = "tests.django.loop_adapters."


@pytest.fixture
def use_adapter(settings: Any) -> Iterator[Callable[[str], None]]:
    def use(name: str) -> None:
        settings.RELAYBRIDGE_ADAPTER = ADAPTERS + name
        _load_adapter.cache_clear()

    yield use
    _load_adapter.cache_clear()


def reply_through(run: AgentRun, text: str) -> Comment:
    """The run goes the way the relay worker takes it, and its reply is saved."""
    assert services.claim_for_sending(run.run_id)
    assert services.mark_accepted(run.run_id, f"evt_{run.pk}")
    reply = services.record_reply(run.run_id, text)
    assert reply is not None
    return reply  # type: ignore[no-any-return]


def runs_of(comment: Comment) -> list[tuple[str, int]]:
    return sorted(AgentRun.objects.filter(comment=comment).values_list("agent_id", "hop_depth"))


@pytest.mark.parametrize("adapter", ["MarksAfterSavingAdapter", "NeverMarksAdapter"])
def test_a_reply_quoting_its_own_mention_starts_nothing(
    make_comment: MakeComment, use_adapter: Callable[[str], None], adapter: str
) -> None:
    use_adapter(adapter)
    question = make_comment("@athena summarize this")
    (run,) = AgentRun.objects.filter(comment=question)

    reply = reply_through(run, "> @athena summarize this\n\nHere it is. @klyve may add more.")

    assert Comment.objects.filter(pk=reply.pk).exists()
    assert runs_of(reply) == []
    assert AgentRun.objects.count() == 1


def test_with_hops_on_the_depth_follows_the_chain_and_the_cap_holds(
    make_comment: MakeComment, use_adapter: Callable[[str], None], settings: Any
) -> None:
    use_adapter("MarksAfterSavingAdapter")
    settings.RELAYBRIDGE_AGENT_HOPS = True
    settings.RELAYBRIDGE_AGENT_HOP_DEPTH = 1
    question = make_comment("@athena ask klyve")
    (first,) = AgentRun.objects.filter(comment=question)
    assert first.hop_depth == 0

    # Athena's reply quotes "@athena" (herself: never) and asks Klyve (one hop).
    reply = reply_through(first, "> @athena ask klyve\n\n@klyve can you check?")
    assert runs_of(reply) == [("klyve", 1)]
    (second,) = AgentRun.objects.filter(comment=reply)
    assert second.requested_by is None

    # Klyve's reply would be a second hop: over the cap of 1.
    reply2 = reply_through(second, "@athena back to you")
    assert runs_of(reply2) == []


def test_the_depth_is_the_parent_runs_plus_one_down_a_deeper_chain(
    make_comment: MakeComment, use_adapter: Callable[[str], None], settings: Any
) -> None:
    use_adapter("NeverMarksAdapter")
    settings.RELAYBRIDGE_AGENT_HOPS = True
    settings.RELAYBRIDGE_AGENT_HOP_DEPTH = 2
    run = AgentRun.objects.get(comment=make_comment("@athena start"))
    depths = []
    for agent in ("klyve", "athena", "klyve"):
        reply = reply_through(run, f"over to @{agent}")
        found = AgentRun.objects.filter(comment=reply).first()
        if found is None:
            break
        depths.append(found.hop_depth)
        run = found
    assert depths == [1, 2]


def test_a_saved_reply_edited_later_is_still_the_agents(
    make_comment: MakeComment, use_adapter: Callable[[str], None], settings: Any
) -> None:
    use_adapter("NeverMarksAdapter")
    run = AgentRun.objects.get(comment=make_comment("@athena start"))
    reply = reply_through(run, "Done.")

    # Outside relaybridge's save, the adapter still calls it nobody's: the ledger knows.
    reply.body = "Done. @athena @klyve, have another look"
    reply.save()
    assert runs_of(reply) == []

    settings.RELAYBRIDGE_AGENT_HOPS = True
    reply.save()
    assert runs_of(reply) == [("klyve", 1)]


def test_a_signal_sent_while_the_reply_is_saved_follows_the_hop_rules(
    make_comment: MakeComment, use_adapter: Callable[[str], None], settings: Any
) -> None:
    use_adapter("AnnouncesRepliesAdapter")
    run = AgentRun.objects.get(comment=make_comment("@athena start"))
    reply = reply_through(run, "no mention in the text")
    assert runs_of(reply) == []

    settings.RELAYBRIDGE_AGENT_HOPS = True
    run = AgentRun.objects.get(comment=make_comment("@athena again"))
    reply = reply_through(run, "still none")
    assert runs_of(reply) == [("klyve", 1)]  # not athena (herself), not at depth 0


def test_a_hosts_signal_for_a_saved_reply_is_the_agents(
    make_comment: MakeComment, use_adapter: Callable[[str], None]
) -> None:
    use_adapter("NeverMarksAdapter")
    run = AgentRun.objects.get(comment=make_comment("@athena start"))
    reply = reply_through(run, "Done.")
    comment_mention.send(sender=Comment, comment=reply, agent_ids=["klyve"])
    assert runs_of(reply) == []


def test_a_hosts_signal_claiming_a_hop_follows_the_rules(
    make_comment: MakeComment, settings: Any
) -> None:
    comment = make_comment("imported, no mention")
    comment_mention.send(sender=Comment, comment=comment, agent_ids=["klyve"], hop_depth=1)
    assert runs_of(comment) == []
    settings.RELAYBRIDGE_AGENT_HOPS = True
    comment_mention.send(sender=Comment, comment=comment, agent_ids=["klyve"], hop_depth=2)
    assert runs_of(comment) == []
    comment_mention.send(sender=Comment, comment=comment, agent_ids=["klyve"], hop_depth=1)
    assert runs_of(comment) == [("klyve", 1)]


def test_people_are_unaffected(
    make_comment: MakeComment, use_adapter: Callable[[str], None]
) -> None:
    use_adapter("NeverMarksAdapter")
    comment = make_comment("@athena and @klyve")
    assert runs_of(comment) == [("athena", 0), ("klyve", 0)]
    comment.body = "@athena and @klyve, edited"
    comment.save()
    # The runs still going are asked again with the edit: a person's, at depth 0.
    assert runs_of(comment) == [("athena", 0), ("athena", 0), ("klyve", 0), ("klyve", 0)]


def test_a_hop_waits_in_the_lane_of_the_person_who_started_the_chain(
    make_comment: MakeComment, use_adapter: Callable[[str], None], settings: Any, user: Any
) -> None:
    use_adapter("NeverMarksAdapter")
    settings.RELAYBRIDGE_AGENT_HOPS = True
    settings.RELAYBRIDGE_AGENT_HOP_DEPTH = 2
    first = AgentRun.objects.get(comment=make_comment("@athena start"))
    assert services.asker_key(first) == str(user.pk)
    second = AgentRun.objects.get(comment=reply_through(first, "over to @klyve"))
    third = AgentRun.objects.get(comment=reply_through(second, "over to @athena"))
    assert (second.requested_by, third.requested_by, third.hop_depth) == (None, None, 2)
    assert services.asker_key(second) == services.asker_key(third) == str(user.pk)


def test_a_hop_from_an_agents_own_comment_is_in_the_lane_of_no_person(
    make_comment: MakeComment, use_adapter: Callable[[str], None], settings: Any
) -> None:
    use_adapter("MarksAfterSavingAdapter")
    settings.RELAYBRIDGE_AGENT_HOPS = True
    # Written by an agent outside any run (an import): no person started it.
    imported = make_comment("@athena have a look", agent_id="klyve")
    (run,) = AgentRun.objects.filter(comment=imported)
    assert (run.requested_by, run.hop_depth) == (None, 1)
    assert services.asker_key(run) is None


def test_a_chain_whose_start_is_gone_or_that_does_not_get_shallower_is_no_ones(
    make_comment: MakeComment, use_adapter: Callable[[str], None], settings: Any
) -> None:
    use_adapter("NeverMarksAdapter")
    settings.RELAYBRIDGE_AGENT_HOPS = True
    first = AgentRun.objects.get(comment=make_comment("@athena start"))
    reply = reply_through(first, "over to @klyve")
    hop = AgentRun.objects.get(comment=reply)
    # A parent as deep as its child is no chain relaybridge made: not followed.
    AgentRun.objects.filter(pk=first.pk).update(hop_depth=hop.hop_depth)
    assert services.asker_key(hop) is None
    AgentRun.objects.filter(pk=first.pk).delete()
    assert services.asker_key(hop) is None
