"""The task pages: the list, and a task with its comments, runs and comment box.

Everything works without JavaScript: posting a comment is a plain form POST that
redirects back (POST/redirect/GET); the agents' answers appear on reload, and live
once relaybridge's script runs.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse, reverse_lazy
from django.views import View
from django.views.generic import ListView

from relaybridge.follow_ups import opt_out_from_request
from relaybridge.reply_actions import reply_prefill

from .forms import CommentForm
from .models import Comment, Task

LOGIN_URL = reverse_lazy("tasks:login")


class TaskListView(LoginRequiredMixin, ListView):  # type: ignore[type-arg]
    login_url = LOGIN_URL
    template_name = "tasks/task_list.html"
    context_object_name = "tasks"

    def get_queryset(self) -> QuerySet[Task]:
        return Task.objects.annotate(comment_count=Count("comments"))


class TaskDetailView(LoginRequiredMixin, View):
    login_url = LOGIN_URL
    template_name = "tasks/task_detail.html"

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        task = get_object_or_404(Task, pk=pk)
        # Opened from "Reply to Athena" (?reply_to=athena): the box starts with "@athena ".
        return self.render_page(
            request, task, CommentForm(initial={"body": reply_prefill(request)})
        )

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        task = get_object_or_404(Task, pk=pk)
        form = CommentForm(request.POST)
        if not form.is_valid():
            return self.render_page(request, task, form, status=400)
        comment: Comment = form.save(commit=False)
        comment.task = task
        assert request.user.is_authenticated  # LoginRequiredMixin saw to it
        comment.author = request.user
        # The comment box's "post without asking the agent" box, for relaybridge's receiver.
        opt_out_from_request(request, comment)
        # post_save parses the mentions and creates the runs; their dispatch is
        # queued on commit, so this request never waits for an agent.
        comment.save()
        return HttpResponseRedirect(reverse("tasks:task_detail", args=[task.pk]) + "#comment-form")

    def render_page(
        self, request: HttpRequest, task: Task, form: CommentForm, status: int = 200
    ) -> HttpResponse:
        context: dict[str, Any] = {
            "task": task,
            "comments": task.comments.select_related("author"),
            "form": form,
        }
        return render(request, self.template_name, context, status=status)
