"""URLs of the cards host: its pages, django_comments' views and relaybridge's buttons."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path

from .cards import views

urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.card_list, name="card_list"),
    path("cards/<int:pk>/", views.card_detail, name="card_detail"),
    path("comments/", include("django_comments.urls")),
    path("relaybridge/", include("relaybridge.urls")),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]
