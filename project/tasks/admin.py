"""The example project's tasks and comments in the admin."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin

from .models import Comment, Task

if TYPE_CHECKING:
    CommentInlineBase = admin.TabularInline[Comment, Task]
    TaskAdminBase = admin.ModelAdmin[Task]
    CommentAdminBase = admin.ModelAdmin[Comment]
else:
    CommentInlineBase = admin.TabularInline
    TaskAdminBase = CommentAdminBase = admin.ModelAdmin


class CommentInline(CommentInlineBase):
    model = Comment
    extra = 0
    fields = ("author", "agent_id", "body", "created_at")
    readonly_fields = ("created_at",)


@admin.register(Task)
class TaskAdmin(TaskAdminBase):
    list_display = ("title", "created_at", "updated_at")
    search_fields = ("title", "description")
    inlines = (CommentInline,)


@admin.register(Comment)
class CommentAdmin(CommentAdminBase):
    list_display = ("task", "author", "agent_id", "created_at")
    list_filter = ("agent_id",)
    search_fields = ("body",)
    raw_id_fields = ("task", "author")
