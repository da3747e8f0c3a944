"""One page: a ticket, its messages with relaybridge's runs, and a form to add one."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from .models import Message, Ticket


def ticket(request: HttpRequest, pk: int) -> HttpResponse:
    thread = get_object_or_404(Ticket, pk=pk)
    if request.method == "POST":
        author = request.user if request.user.is_authenticated else None
        Message.objects.create(ticket=thread, author=author, text=request.POST["text"])
        return redirect("ticket", pk=pk)
    return render(
        request, "helpdesk/ticket.html", {"ticket": thread, "messages": thread.messages.all()}
    )
