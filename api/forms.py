"""The token form: a name, the scopes the user may grant, and an optional catalog."""

from __future__ import annotations

from django import forms

from api.models import Scope
from marketing.models import Catalog


class TokenCreateForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What the token is for, e.g. “Klaviyo sync”. Only you and admins see it.",
    )
    scopes = forms.MultipleChoiceField(
        choices=(),
        widget=forms.CheckboxSelectMultiple,
        help_text="Give a token only what its tool needs.",
    )
    catalog = forms.ModelChoiceField(
        queryset=Catalog.objects.order_by("name"),
        required=False,
        empty_label="Every catalog",
        help_text="Limit the token to one catalog (recommended).",
    )

    def __init__(self, *args, allowed_scopes: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        labels = dict(Scope.choices)
        self.fields["scopes"].choices = [(s, f"{s} — {labels[s]}") for s in allowed_scopes]
