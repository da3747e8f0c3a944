"""The card pages. Comments are posted to django_comments' own view (``comments/post/``)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from .models import Card


@login_required
def card_list(request: HttpRequest) -> HttpResponse:
    return render(request, "cards/card_list.html", {"cards": Card.objects.order_by("pk")})


@login_required
def card_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "cards/card_detail.html", {"card": get_object_or_404(Card, pk=pk)})
