"""Home and About."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from marketing import selectors


def home(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "marketing/home.html",
        {"totals": selectors.totals(), "recent_jobs": selectors.job_list(limit=5), "nav": "home"},
    )


def about(request: HttpRequest) -> HttpResponse:
    return render(request, "marketing/about.html", {"nav": "about"})
