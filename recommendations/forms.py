"""Forms of the recommendation pages: a run's settings and the business rules.

Marketers name products by SKU; the forms turn SKUs into the product ids the services store
(`RulesForm.rules()`), and back (`rules_initial`) to show a run's rules for editing.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.utils.html import format_html_join

from marketing.models import Catalog, Product
from recommendations.selectors import products_by_sku
from recommendations.services import algorithms_available

MAX_TOP_N = 100
MAX_BUDGET_S = 3600
_SPLIT = re.compile(r"[,\n\r]+")


class MultiTextInput(forms.Widget):
    """Several text inputs of one name (the values plus some blank ones), read as a list."""

    def __init__(self, attrs=None, *, blanks: int = 1, minimum: int = 2) -> None:
        super().__init__(attrs)
        self.blanks = blanks
        self.minimum = minimum

    def value_from_datadict(self, data, files, name):
        if hasattr(data, "getlist"):
            return data.getlist(name)
        value = data.get(name)
        return value if isinstance(value, list) else [value] if value else []

    def value_omitted_from_data(self, data, files, name) -> bool:
        return False  # an empty list is a value (no categories)

    def render(self, name, value, attrs=None, renderer=None):
        values = [v for v in (value or []) if v]
        rows = values + [""] * max(self.blanks, self.minimum - len(values))
        attrs = {**self.attrs, **(attrs or {})}
        base_id = attrs.pop("id", f"id_{name}")
        label = attrs.pop("aria-label", "")
        extra = format_html_join(" ", '{}="{}"', sorted(attrs.items()))
        return format_html_join(
            "\n",
            '<input type="text" name="{}" value="{}" id="{}" aria-label="{}" {}>',
            (
                (name, v, base_id if i == 0 else f"{base_id}_{i}", f"{label} {i + 1}", extra)
                for i, v in enumerate(rows)
            ),
        )


class PathListField(forms.Field):
    """A list of category paths ("Home > Kitchen"), blanks dropped."""

    widget = MultiTextInput

    def to_python(self, value) -> list[str]:
        if isinstance(value, str):
            value = [value]
        return [" > ".join(p.strip() for p in v.split(">") if p.strip()) for v in value or [] if v]

    def validate(self, value) -> None:
        super().validate(value)
        if len({v.casefold() for v in value}) != len(value):
            raise forms.ValidationError("A category is listed twice.")


def _skus(text: str) -> list[str]:
    return [s.strip() for s in _SPLIT.split(text or "") if s.strip()]


def _pairs(text: str, *, what: str, example: str) -> list[tuple[str, float]]:
    """Lines "key = factor" (a factor above 0); a ValidationError names the bad line."""
    out: list[tuple[str, float]] = []
    for n, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, factor = line.rpartition("=")
        try:
            value = float(factor) if sep else None
        except ValueError:
            value = None
        if not key.strip() or value is None:
            raise forms.ValidationError(
                f"Line {n}: write one {what} and its factor per line, e.g. “{example}”."
            )
        if not 0 < value < float("inf"):
            raise forms.ValidationError(f"Line {n}: the factor must be a number above 0.")
        out.append((key.strip(), value))
    return out


class RulesForm(forms.Form):
    """The business rules of a run (or of a preview), products by SKU."""

    top_n = forms.IntegerField(
        label="List length",
        min_value=1,
        max_value=MAX_TOP_N,
        initial=20,
        help_text=f"Products per customer (1–{MAX_TOP_N}).",
    )
    exclude_bought = forms.BooleanField(
        label="Leave out what the customer already bought", required=False, initial=True
    )
    in_stock_only = forms.BooleanField(label="Only products in stock", required=False, initial=True)
    include_categories = PathListField(
        label="Only these categories",
        required=False,
        help_text="A category includes the ones below it; empty = every category.",
        widget=MultiTextInput(
            attrs={"list": "rec-categories", "aria-label": "Only category"}, blanks=1, minimum=2
        ),
    )
    exclude_categories = PathListField(
        label="Never these categories",
        required=False,
        widget=MultiTextInput(
            attrs={"list": "rec-categories", "aria-label": "Never category"}, blanks=1, minimum=2
        ),
    )
    price_min = forms.FloatField(label="Lowest price", required=False, min_value=0)
    price_max = forms.FloatField(label="Highest price", required=False, min_value=0)
    boost = forms.CharField(
        label="Boost products",
        required=False,
        help_text="One SKU = factor per line; 2 doubles a product's relevance, 0.5 halves it.",
        widget=forms.Textarea(attrs={"rows": 2, "class": "mono", "spellcheck": "false"}),
    )
    boost_categories = forms.CharField(
        label="Boost categories",
        required=False,
        help_text="One category = factor per line, e.g. Home > Kitchen = 1.5.",
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
    )
    bury = forms.CharField(
        label="Bury products",
        required=False,
        help_text="SKUs, separated by commas or lines: shown only when nothing else is left.",
        widget=forms.Textarea(attrs={"rows": 2, "class": "mono", "spellcheck": "false"}),
    )
    pin = forms.CharField(
        label="Pin products",
        required=False,
        help_text="SKUs in order: first in every list that the filters allow them in.",
        widget=forms.Textarea(attrs={"rows": 2, "class": "mono", "spellcheck": "false"}),
    )
    mmr_lambda = forms.FloatField(
        label="Relevance vs. diversity (λ)",
        min_value=0,
        max_value=1,
        initial=1.0,
        help_text="1 = by relevance only; lower values trade relevance for variety (0.7 is a "
        "good start).",
        widget=forms.NumberInput(attrs={"step": "0.05", "min": "0", "max": "1"}),
    )

    RULE_FIELDS = (
        "top_n",
        "exclude_bought",
        "in_stock_only",
        "include_categories",
        "exclude_categories",
        "price_min",
        "price_max",
        "boost",
        "boost_categories",
        "bury",
        "pin",
        "mmr_lambda",
    )

    def __init__(self, *args, catalog: Catalog, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.catalog = catalog
        self._products: dict[str, Product] = {}

    def clean_boost(self) -> list[tuple[str, float]]:
        pairs = _pairs(self.cleaned_data["boost"], what="SKU", example="85123A = 1.5")
        if len({sku for sku, _ in pairs}) != len(pairs):
            raise forms.ValidationError("A SKU is listed twice.")
        return pairs

    def clean_boost_categories(self) -> dict[str, float]:
        pairs = _pairs(
            self.cleaned_data["boost_categories"], what="category", example="Home > Kitchen = 1.5"
        )
        return {" > ".join(p.strip() for p in k.split(">") if p.strip()): v for k, v in pairs}

    def _clean_sku_list(self, name: str) -> list[str]:
        skus = _skus(self.cleaned_data[name])
        twice = sorted({s for s in skus if skus.count(s) > 1})
        if twice:
            raise forms.ValidationError(f"Listed twice: {', '.join(twice)}.")
        return skus

    def clean_bury(self) -> list[str]:
        return self._clean_sku_list("bury")

    def clean_pin(self) -> list[str]:
        return self._clean_sku_list("pin")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        lo, hi = data.get("price_min"), data.get("price_max")
        if lo is not None and hi is not None and lo > hi:
            self.add_error("price_max", "The highest price is below the lowest.")
        both = set(data.get("pin") or []) & set(data.get("bury") or [])
        if both:
            self.add_error("bury", f"Both pinned and buried: {', '.join(sorted(both))}.")
        wanted = {sku for sku, _ in data.get("boost") or []}
        wanted |= set(data.get("bury") or []) | set(data.get("pin") or [])
        self._products = products_by_sku(catalog=self.catalog, skus=sorted(wanted))
        for name in ("boost", "bury", "pin"):
            if name not in data:
                continue
            skus = [s for s, _ in data[name]] if name == "boost" else data[name]
            unknown = [s for s in skus if s not in self._products]
            if unknown:
                shown = ", ".join(unknown[:5]) + (" …" if len(unknown) > 5 else "")
                self.add_error(
                    name,
                    f"No product with SKU {shown} in this catalog "
                    "(SKUs must match exactly, capitals included).",
                )
        return data

    def rules(self) -> dict[str, Any]:
        """The rules as the services take them (product ids); call after is_valid()."""
        data = self.cleaned_data
        ids = {sku: p.pk for sku, p in self._products.items()}
        return {
            "top_n": data["top_n"],
            "exclude_bought": data["exclude_bought"],
            "in_stock_only": data["in_stock_only"],
            "include_categories": data["include_categories"],
            "exclude_categories": data["exclude_categories"],
            "price_min": data["price_min"],
            "price_max": data["price_max"],
            "boost": {ids[sku]: factor for sku, factor in data["boost"]},
            "boost_categories": data["boost_categories"],
            "bury": [ids[sku] for sku in data["bury"]],
            "pin": [ids[sku] for sku in data["pin"]],
            "mmr_lambda": data["mmr_lambda"],
        }

    def add_service_errors(self, exc) -> None:
        """A service's ValidationError, each message under the field it names."""
        errors = getattr(exc, "error_dict", None)
        if errors is None:
            self.add_error(None, exc)
            return
        for key, messages in errors.items():
            self.add_error(key if key in self.fields else None, messages)


def _factor(value: float) -> str:
    return f"{value:g}"


def rules_initial(rules: dict[str, Any], products: dict[int, Product]) -> dict[str, Any]:
    """A stored rules dict (product ids) as the form's initial values (SKUs)."""
    rules = rules or {}

    def sku(pk) -> str:
        product = products.get(int(pk))
        return product.sku if product else ""

    boost = [(sku(k), v) for k, v in (rules.get("boost") or {}).items()]
    return {
        "top_n": rules.get("top_n", 20),
        "exclude_bought": rules.get("exclude_bought", True),
        "in_stock_only": rules.get("in_stock_only", True),
        "include_categories": list(rules.get("include_categories") or []),
        "exclude_categories": list(rules.get("exclude_categories") or []),
        "price_min": rules.get("price_min"),
        "price_max": rules.get("price_max"),
        "boost": "\n".join(f"{s} = {_factor(v)}" for s, v in boost if s),
        "boost_categories": "\n".join(
            f"{k} = {_factor(v)}" for k, v in (rules.get("boost_categories") or {}).items()
        ),
        "bury": "\n".join(s for s in map(sku, rules.get("bury") or []) if s),
        "pin": "\n".join(s for s in map(sku, rules.get("pin") or []) if s),
        "mmr_lambda": rules.get("mmr_lambda", 1.0),
    }


class RunForm(RulesForm):
    """A new run: which algorithms (or the automatic choice), the time budget, the rules."""

    AUTO, PICK = "auto", "pick"

    choice = forms.ChoiceField(
        label="Algorithms",
        choices=[
            (AUTO, "Automatic: compare every suitable algorithm and keep the best"),
            (PICK, "Only the ones I tick below"),
        ],
        initial=AUTO,
        widget=forms.RadioSelect,
    )
    algorithms = forms.MultipleChoiceField(
        label="Compare these algorithms",
        required=False,
        choices=lambda: [(name, name) for name in algorithms_available()],
        widget=forms.CheckboxSelectMultiple,
    )
    budget_s = forms.IntegerField(
        label="Time budget (seconds)",
        min_value=1,
        max_value=MAX_BUDGET_S,
        initial=60,
        help_text="Tuning time shared by all algorithms; scoring every customer comes on top.",
    )

    field_order = ["choice", "algorithms", "budget_s", *RulesForm.RULE_FIELDS]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("choice") == self.PICK and not data.get("algorithms"):
            self.add_error("algorithms", "Tick at least one algorithm, or choose automatic.")
        return data

    def algorithm_names(self) -> list[str] | None:
        """The algorithms to compare; None = the automatic choice."""
        if self.cleaned_data["choice"] == self.AUTO:
            return None
        return list(self.cleaned_data["algorithms"])


class PreviewRulesForm(RulesForm):
    """Rules to re-rank one customer's preview with (sent by GET; `edit` marks a sent form)."""

    edit = forms.CharField(widget=forms.HiddenInput, required=False, initial="1")
