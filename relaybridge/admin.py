"""The run ledger in the admin: every mention, its agent, status, thread and timings.

Read-only: runs change only through relaybridge's services, never by hand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.http import HttpRequest

from .models import AgentRun
from .worker.status import read_status

#: Where agents are registered and tokens rotated: relaybridge itself never does either.
RELAY_DASHBOARD_URL = "https://relay.ckgworks.com"

if TYPE_CHECKING:
    AgentRunAdminBase = admin.ModelAdmin[AgentRun]
else:
    AgentRunAdminBase = admin.ModelAdmin


def _ms(value: int | None) -> str:
    return "—" if value is None else f"{value / 1000:.1f} s"


@admin.register(AgentRun)
class AgentRunAdmin(AgentRunAdminBase):
    # Above the ledger: what the relay worker reports (or that none is running).
    change_list_template = "admin/relaybridge/agentrun/change_list.html"
    list_display = (
        "agent_id",
        "status",
        "thread_id",
        "comment_id",
        "queued_at",
        "attempts",
        "time_to_first_token",
        "duration",
        "error_code",
    )
    list_filter = ("status", "agent_id", "error_code")
    search_fields = ("agent_id", "thread_id", "event_id", "error_code", "error_message")
    date_hierarchy = "queued_at"
    list_select_related = ("comment",)
    ordering = ("-queued_at", "-id")
    fieldsets = (
        (None, {"fields": ("run_id", "agent_id", "status", "thread_id", "thread_key")}),
        ("Request", {"fields": ("comment", "requested_by", "hop_depth", "payload")}),
        (
            "Relay",
            {"fields": ("event_id", "attempts", "next_attempt_at", "error_code", "error_message")},
        ),
        (
            "Outcome",
            {
                "fields": (
                    "reply_comment",
                    "partial_text",
                    "tokens_used",
                    "model_name",
                    "relay_latency_ms",
                    "first_token_ms",
                )
            },
        ),
        (
            "Timeline",
            {
                "fields": (
                    "queued_at",
                    "sent_at",
                    "accepted_at",
                    "first_token_at",
                    "finished_at",
                    "updated_at",
                )
            },
        ),
    )

    @admin.display(description="first token")
    def time_to_first_token(self, run: AgentRun) -> str:
        return _ms(run.first_token_ms)

    @admin.display(description="duration")
    def duration(self, run: AgentRun) -> str:
        if run.finished_at is None:
            return "—"
        return f"{(run.finished_at - run.queued_at).total_seconds():.1f} s"

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> Any:
        status = read_status()
        context = {
            "relay_worker": status.describe() if status is not None else None,
            "relay_dashboard_url": RELAY_DASHBOARD_URL,
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=context)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
