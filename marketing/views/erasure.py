"""Customer erasure: a confirmation page (what goes, what stays) and the POST that erases.

Only holders of `marketing.delete_customer` (admins) reach it; everyone else gets 403 on GET
and POST. The admin confirms by typing the customer's external id. Flash messages carry
counts and the row id only: messages are stored in the session, which outlives the erasure.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from marketing import selectors
from marketing.models import Customer
from marketing.permissions import require_perm
from marketing.services import customers as customer_services


class CustomerEraseForm(forms.Form):
    confirmation = forms.CharField(
        label="Type the customer's external id to confirm",
        max_length=200,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )

    def __init__(self, *args, expected: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.expected = expected

    def clean_confirmation(self) -> str:
        value = self.cleaned_data["confirmation"]
        if value != self.expected.strip():
            raise ValidationError(
                "That is not this customer's external id; nothing was erased.", code="mismatch"
            )
        return value


def _get_customer_for_user(request: HttpRequest, pk: int) -> Customer:
    """The customer (404 if missing), then 403 without the erasure permission."""
    customer = selectors.customer_get(pk=pk)
    require_perm(request.user, customer_services.ERASURE_PERM)
    return customer


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def customer_erase(request: HttpRequest, pk: int) -> HttpResponse:
    """GET shows what erasure removes and keeps; only a confirmed POST erases."""
    customer = _get_customer_for_user(request, pk)
    if customer.erased_at is not None:
        messages.info(request, f"Customer #{customer.pk} was already erased; nothing to do.")
        return redirect(customer)
    form = CustomerEraseForm(
        request.POST if request.method == "POST" else None, expected=customer.external_id
    )
    error = None
    if request.method == "POST" and form.is_valid():
        try:
            result = customer_services.customer_erase(user=request.user, customer=customer)
        except Customer.DoesNotExist as exc:  # deleted since the fetch above
            raise Http404("No such customer.") from exc
        except customer_services.CustomerErasureError as exc:  # busy, or a file; rolled back
            error = " ".join(exc.messages)
        else:
            level = messages.INFO if result.already_erased else messages.SUCCESS
            messages.add_message(request, level, result.message)
            return redirect(customer)
    context = {
        "customer": customer,
        "form": form,
        "error": error,
        "preview": customer_services.customer_erasure_preview(customer=customer),
        "active_imports": customer_services.active_imports(),
        "nav": "customers",
    }
    return render(request, "marketing/customer_erase.html", context)
