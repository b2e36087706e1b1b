"""Forms are interfaces: they turn request data into clean values for services and selectors.

Sections: catalogs, browse filters, then imports (appended by the import work). Keep each
section's names prefixed by its noun so the sections never collide.
"""

from __future__ import annotations

import re
import zoneinfo
from decimal import Decimal

from django import forms

from marketing.models import Catalog, Upload, default_non_product_patterns
from marketing.selectors import ProductSort, catalog_name_taken

# =============================================================================================
# Catalogs
# =============================================================================================

_CURRENCY = re.compile(r"^[A-Z]{3}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
MAX_PATTERNS = 200
MAX_PATTERN_LENGTH = 200


def _timezone_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in sorted(zoneinfo.available_timezones())]


class CatalogFields(forms.Form):
    """A catalog's editable fields and their rules, shared by the page form and the admin's.

    Subclasses set `self.catalog` (the catalog being edited, or None when creating one).
    Non-product patterns arrive as one regular expression per line.
    """

    catalog: Catalog | None = None

    name = forms.CharField(max_length=200)
    currency = forms.CharField(
        max_length=3,
        min_length=3,
        initial="EUR",
        help_text="Three-letter ISO 4217 code, e.g. EUR, GBP, USD.",
        widget=forms.TextInput(attrs={"autocapitalize": "characters", "size": 4}),
    )
    default_language = forms.CharField(
        max_length=8,
        initial="en",
        label="Default language",
        help_text="Language code for copy, e.g. en, de, en-GB.",
    )
    timezone = forms.ChoiceField(
        choices=_timezone_choices,
        initial="UTC",
        label="Time zone",
        help_text="Imported timestamps without a zone are read in this one; sales charts use it.",
    )
    non_product_patterns = forms.CharField(
        required=False,
        label="Non-product SKU patterns",
        help_text=(
            "One regular expression per line, matched against SKUs case-insensitively. "
            "Matching lines (postage, fees, vouchers…) are skipped by future imports."
        ),
        widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "false", "class": "mono"}),
    )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the catalog a name.")
        exclude_pk = self.catalog.pk if self.catalog is not None else None
        if catalog_name_taken(name=name, exclude_pk=exclude_pk):
            raise forms.ValidationError(f"A catalog named “{name}” already exists.")
        return name

    def clean_currency(self) -> str:
        currency = self.cleaned_data["currency"].strip().upper()
        if not _CURRENCY.match(currency):
            raise forms.ValidationError("Use a three-letter ISO 4217 code such as EUR.")
        return currency

    def clean_default_language(self) -> str:
        language = self.cleaned_data["default_language"].strip()
        if not _LANGUAGE.match(language):
            raise forms.ValidationError("Use a language code such as en, de or en-GB.")
        return language

    def clean_non_product_patterns(self) -> list[str]:
        """One pattern per line; blank lines and repeats are dropped, bad lines are named."""
        patterns: list[str] = []
        errors: list[str] = []
        for number, line in enumerate(self.cleaned_data["non_product_patterns"].splitlines(), 1):
            pattern = line.strip()
            if not pattern or pattern in patterns:
                continue
            if len(pattern) > MAX_PATTERN_LENGTH:
                errors.append(f"Line {number}: longer than {MAX_PATTERN_LENGTH} characters.")
                continue
            try:
                re.compile(pattern)
            except re.error as exc:
                errors.append(
                    f"Line {number}: “{pattern}” is not a valid regular expression ({exc})."
                )
                continue
            patterns.append(pattern)
        if len(patterns) > MAX_PATTERNS:
            errors.append(f"At most {MAX_PATTERNS} patterns, please.")
        if errors:
            raise forms.ValidationError(errors)
        return patterns


class CatalogForm(CatalogFields):
    """Create or edit a catalog on the catalog pages."""

    def __init__(self, *args, catalog: Catalog | None = None, **kwargs) -> None:
        self.catalog = catalog
        if catalog is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "name": catalog.name,
                "currency": catalog.currency,
                "default_language": catalog.default_language,
                "timezone": catalog.timezone,
                "non_product_patterns": "\n".join(catalog.non_product_patterns or []),
            }
        elif "initial" not in kwargs:
            kwargs["initial"] = {"non_product_patterns": "\n".join(default_non_product_patterns())}
        super().__init__(*args, **kwargs)


class CatalogAdminForm(CatalogFields, forms.ModelForm):
    """The Django admin's catalog form: the same fields and rules as the catalog pages.

    The admin saves through the catalog services (CatalogAdmin.save_model), which check the
    rules again, so the admin cannot store a catalog that an import would trip over.
    """

    class Meta:
        model = Catalog
        fields = ["name", "currency", "default_language", "timezone", "non_product_patterns"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.catalog = self.instance if self.instance.pk else None
        # One pattern per line, as on the catalog pages; a new catalog shows the defaults.
        patterns = self.initial.get("non_product_patterns", self.instance.non_product_patterns)
        if isinstance(patterns, list):
            self.initial["non_product_patterns"] = "\n".join(patterns)


# =============================================================================================
# Browse filters (GET forms: invalid values are reported and ignored, never a 500)
# =============================================================================================


class ProductFilterForm(forms.Form):
    """Search, filters and sort of a catalog's product list."""

    IN_STOCK_CHOICES = [("", "Any"), ("yes", "In stock"), ("no", "Out of stock")]

    q = forms.CharField(
        required=False,
        max_length=200,
        label="Search",
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "SKU, title or description", "autofocus": True}
        ),
    )
    category = forms.ChoiceField(required=False)
    price_min = forms.DecimalField(
        required=False,
        min_value=Decimal("0"),
        max_digits=12,
        decimal_places=2,
        label="Price from",
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0", "inputmode": "decimal"}),
    )
    price_max = forms.DecimalField(
        required=False,
        min_value=Decimal("0"),
        max_digits=12,
        decimal_places=2,
        label="Price to",
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0", "inputmode": "decimal"}),
    )
    in_stock = forms.ChoiceField(required=False, choices=IN_STOCK_CHOICES, label="Stock")
    sort = forms.ChoiceField(required=False, choices=ProductSort.choices, label="Sort by")

    def __init__(self, *args, categories: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["category"].choices = [("", "All categories")] + [(c, c) for c in categories]

    def clean(self) -> dict:
        cleaned = super().clean()
        low, high = cleaned.get("price_min"), cleaned.get("price_max")
        if low is not None and high is not None and low > high:
            self.add_error("price_max", "Must not be below “Price from”.")
        return cleaned

    def filters(self) -> dict:
        """Keyword arguments for selectors.product_search from the fields that were valid."""
        data = self.cleaned_data if hasattr(self, "cleaned_data") else {}
        in_stock = {"yes": True, "no": False}.get(data.get("in_stock") or "")
        return {
            "q": data.get("q") or "",
            "category": data.get("category") or "",
            "price_min": data.get("price_min"),
            "price_max": data.get("price_max"),
            "in_stock": in_stock,
            "sort": data.get("sort") or ProductSort.TITLE,
        }


class CustomerFilterForm(forms.Form):
    """Search, country and catalog filters of the customer list."""

    q = forms.CharField(
        required=False,
        max_length=200,
        label="Search",
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "ID, name, email or country", "autofocus": True}
        ),
    )
    country = forms.ChoiceField(required=False)
    catalog = forms.ModelChoiceField(
        queryset=Catalog.objects.order_by("name"),
        required=False,
        empty_label="All catalogs",
        label="With events in",
    )

    def __init__(self, *args, countries: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["country"].choices = [("", "All countries")] + [(c, c) for c in countries]

    def filters(self) -> dict:
        """Keyword arguments for selectors.customer_search from the fields that were valid."""
        data = self.cleaned_data if hasattr(self, "cleaned_data") else {}
        return {
            "q": data.get("q") or "",
            "country": data.get("country") or "",
            "catalog": data.get("catalog"),
        }


# =============================================================================================
# Imports
# =============================================================================================


# Campaign results belong to an export: they are imported from the export's page.
CATALOG_UPLOAD_KINDS = [(k, v) for k, v in Upload.Kind.choices if k != Upload.Kind.CAMPAIGN_RESULTS]


class FileUploadForm(forms.Form):
    """A file to import whose kind the page already knows (campaign results)."""

    file = forms.FileField(
        label="File",
        help_text="CSV (any delimiter; UTF-8, UTF-16 or Latin-1), JSON, JSON Lines or XLSX.",
    )


class UploadForm(FileUploadForm):
    kind = forms.ChoiceField(choices=CATALOG_UPLOAD_KINDS, label="What is in the file?")
    field_order = ["kind", "file"]


class MappingForm(forms.Form):
    """One select per target field, listing the file's columns."""

    def __init__(self, *args, kind: str, columns: list[str], **kwargs) -> None:
        # Imported here: the importer's package loads pandas, and every process imports this
        # module (the admin's catalog form), export workers too.
        from marketing.analytics.importing import FIELDS, auto_map

        super().__init__(*args, **kwargs)
        initial = auto_map(columns, kind)
        choices = [("", "— not in file —")] + [(c, c) for c in columns]
        for spec in FIELDS.get(kind, []):
            self.fields[spec.name] = forms.ChoiceField(
                label=spec.label,
                choices=choices,
                required=spec.required,
                initial=initial.get(spec.name) or "",
                help_text=spec.help,
            )
        self.specs = FIELDS.get(kind, [])

    def mapping(self) -> dict[str, str | None]:
        return {name: (value or None) for name, value in self.cleaned_data.items()}


class DashboardForm(forms.Form):
    """Catalog and date range of the dashboard; invalid or missing values fall back to defaults."""

    catalog = forms.ModelChoiceField(queryset=Catalog.objects.order_by("name"), required=False)
    date_from = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            raise forms.ValidationError("“From” must not be after “To”.")
        return data
