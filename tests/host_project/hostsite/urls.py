"""URLs of the small host project."""

from django.urls import include, path
from helpdesk import views

urlpatterns = [
    path("relaybridge/", include("relaybridge.urls")),
    path("tickets/<int:pk>/", views.ticket, name="ticket"),
]
