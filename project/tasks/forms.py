"""The comment box of a task page."""

from __future__ import annotations

from django import forms

from .models import Comment


class CommentForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Comment
        fields = ("body",)
        labels = {"body": "Add a comment"}
        widgets = {
            "body": forms.Textarea(
                attrs={
                    "rows": 4,
                    "aria-describedby": "relaybridge-mention-hint",
                    "placeholder": "Write a comment… type @ to ask an agent",
                }
            )
        }
        error_messages = {"body": {"required": "Write something before posting."}}
