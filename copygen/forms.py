"""The brief form: what to write, for whom, from which products, under which brand rules.

The catalog is fixed per brief; segments, runs and products come from it. Hand-picked
products are typed as SKUs (one per line) and become Product rows here; an unknown SKU is
an error that names it. The services validate everything again (copygen.services.briefs):
their errors land under the field they name (``add_service_errors``).

`ExportForm`: the export of a brief's approved copy (format, Excel BOM, control group,
variant split).
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.db.models import Exists, OuterRef, Q

from copygen.engine.occasions import NAMES as OCCASION_NAMES
from copygen.engine.types import CHANNELS, LOCALES, TONES
from copygen.models import CHANNEL_LABELS, LOCALE_LABELS, Brief, preset_label
from copygen.services.briefs import (
    MAX_HAND_PICKED,
    MAX_PRODUCTS_PER_MESSAGE,
    MAX_SMS_SEGMENTS,
    MAX_VARIANTS,
)
from copygen.services.exports import (
    MAX_CONTROL_SHARE,
    PRESET_HELP,
    export_presets_for,
)
from marketing.models import Catalog, Product, Segment
from recommendations.models import ModelRun, Recommendation

_SKU_SPLIT = re.compile(r"[\n\r,]+")
BRAND_FIELDS = ("voice", "banned_words", "disclaimer", "sender")

TONE_HELP = (
    "Urgent is used only where the data supports it (a product with low stock, or an "
    "occasion with an end date); elsewhere those drafts fall back to friendly and say so."
)


class RunChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: ModelRun) -> str:
        label = f"Run #{obj.pk}"
        if obj.selected_algorithm:
            label += f" · {obj.selected_algorithm}"
        if obj.finished_at:
            label += f" · {obj.finished_at:%d %b %Y}"
        return label + (" (current)" if obj.is_current else "")


class SegmentChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Segment) -> str:
        return f"{obj.name} ({obj.get_kind_display()}, {obj.size:,} customers)"


class BriefForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="For you and your team, e.g. “Spring email”.")
    audience = forms.ChoiceField(
        choices=Brief.Audience.choices,
        initial=Brief.Audience.SEGMENT,
        widget=forms.RadioSelect,
    )
    segment = SegmentChoiceField(queryset=Segment.objects.none(), empty_label="Choose a segment")
    channel = forms.ChoiceField(choices=[(c, CHANNEL_LABELS[c]) for c in CHANNELS])
    tone = forms.ChoiceField(
        choices=[(t, t.capitalize()) for t in TONES], initial="friendly", help_text=TONE_HELP
    )
    locales = forms.MultipleChoiceField(
        label="Languages",
        choices=[(code, LOCALE_LABELS[code]) for code in LOCALES],
        initial=["en"],
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one language."},
    )
    customer_language = forms.BooleanField(
        label="Write to each customer in their own language",
        required=False,
        help_text="One draft per customer only: their language when Tailor writes it, "
        "otherwise the first language ticked above.",
    )
    source = forms.ChoiceField(
        label="Products from",
        choices=Brief.Source.choices,
        initial=Brief.Source.RECOMMENDATIONS,
        widget=forms.RadioSelect,
        help_text="Recommended: each customer's own recommendations (the segment's list for "
        "a segment brief, and for customers without a list of their own).",
    )
    model_run = RunChoiceField(
        label="Recommendation run",
        queryset=ModelRun.objects.none(),
        required=False,
        empty_label="The current run when drafting starts",
    )
    products = forms.CharField(
        label="Hand-picked products",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "class": "mono"}),
        help_text="SKUs, one per line. The copy for each customer uses the ones closest to "
        "their interests.",
    )
    products_per_message = forms.IntegerField(
        min_value=1, max_value=MAX_PRODUCTS_PER_MESSAGE, initial=1
    )
    variants = forms.IntegerField(
        label="Variants",
        min_value=1,
        max_value=MAX_VARIANTS,
        initial=3,
        help_text=f"Versions per customer (or segment) and language, best first (1–{MAX_VARIANTS}).",
    )
    occasion = forms.ChoiceField(
        required=False,
        choices=[("", "None")]
        + sorted(((k, v["en"]) for k, v in OCCASION_NAMES.items()), key=lambda kv: kv[1]),
        help_text="Mentioned where it is kept in the recipient's country, with its date.",
    )
    sms_segments = forms.IntegerField(
        label="SMS segments",
        min_value=1,
        max_value=MAX_SMS_SEGMENTS,
        initial=1,
        help_text="SMS only: how many 160-character (GSM-7) or 70-character (Unicode) "
        "segments a message may take.",
    )
    voice = forms.CharField(
        label="Brand voice",
        max_length=300,
        required=False,
        help_text="Descriptors separated by commas, e.g. “warm, witty”.",
    )
    banned_words = forms.CharField(
        label="Banned words",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One word or phrase per line; a draft that uses one fails its checks.",
    )
    disclaimer = forms.CharField(
        label="Required disclaimer",
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Added where the channel has room; a draft without it fails its checks.",
    )
    sender = forms.CharField(
        label="Brand name",
        max_length=100,
        required=False,
        help_text="Used in sign-offs.",
    )

    def __init__(self, *args: Any, catalog: Catalog, brief: Brief | None = None, **kwargs):
        if brief is not None and "initial" not in kwargs:
            kwargs["initial"] = brief_initial(brief)
        super().__init__(*args, **kwargs)
        self.catalog = catalog
        self.fields["segment"].queryset = Segment.objects.filter(catalog=catalog).order_by(
            "kind", "name"
        )
        has_rows = Exists(Recommendation.objects.filter(run_id=OuterRef("pk")))
        runs = ModelRun.objects.filter(catalog=catalog, status=ModelRun.Status.SUCCEEDED).filter(
            Q(is_current=True) | has_rows
        )
        if brief is not None and brief.model_run_id:
            runs = ModelRun.objects.filter(Q(pk__in=runs.values("pk")) | Q(pk=brief.model_run_id))
        self.fields["model_run"].queryset = runs.order_by("-created_at")
        self.fields["products"].help_text += f" At most {MAX_HAND_PICKED}."

    def clean_products(self) -> list[Product]:
        skus = list(
            dict.fromkeys(s.strip() for s in _SKU_SPLIT.split(self.cleaned_data["products"] or ""))
        )
        skus = [s for s in skus if s]
        if len(skus) > MAX_HAND_PICKED:
            raise forms.ValidationError(f"Pick at most {MAX_HAND_PICKED} products.")
        found = {p.sku: p for p in Product.objects.filter(catalog=self.catalog, sku__in=skus)}
        unknown = [s for s in skus if s not in found]
        if unknown:
            shown = ", ".join(unknown[:10]) + (" …" if len(unknown) > 10 else "")
            raise forms.ValidationError(
                f"Not in catalog “{self.catalog.name}”: {shown}.", code="unknown_sku"
            )
        return [found[s] for s in skus]

    def service_fields(self) -> dict[str, Any]:
        """The cleaned values as the brief services take them."""
        data = dict(self.cleaned_data)
        data["occasion"] = data.get("occasion") or ""
        return data

    def add_service_errors(self, exc) -> None:
        """A service's ValidationError, each message under the field it names."""
        errors = getattr(exc, "error_dict", None)
        if errors is None:
            self.add_error(None, exc)
            return
        for key, messages in errors.items():
            self.add_error(key if key in self.fields else None, messages)


def brief_initial(brief: Brief) -> dict[str, Any]:
    """A brief's values as the form shows them (products as SKUs)."""
    return {
        "name": brief.name,
        "audience": brief.audience,
        "segment": brief.segment_id,
        "channel": brief.channel,
        "tone": brief.tone,
        "locales": list(brief.locales),
        "customer_language": brief.customer_language,
        "source": brief.source,
        "model_run": brief.model_run_id,
        "products": "\n".join(brief.products.order_by("sku").values_list("sku", flat=True)),
        "products_per_message": brief.products_per_message,
        "variants": brief.variants,
        "occasion": brief.occasion,
        "sms_segments": brief.sms_segments,
        "voice": brief.voice,
        "banned_words": brief.banned_words,
        "disclaimer": brief.disclaimer,
        "sender": brief.sender,
    }


def brand_initial(catalog: Catalog) -> dict[str, str]:
    """Brand rules of the catalog's most recent brief (a new brief starts from them)."""
    last = Brief.objects.filter(catalog=catalog).order_by("-created_at", "-pk").first()
    if last is None:
        return {}
    return {field: getattr(last, field) for field in BRAND_FIELDS}


class ExportForm(forms.Form):
    """What to export a brief's approved copy as. The presets offered are those that take
    the brief's channel; copygen.services.exports validates everything again."""

    preset = forms.ChoiceField(
        label="Format",
        widget=forms.RadioSelect,
        error_messages={"required": "Choose a format."},
    )
    excel_bom = forms.BooleanField(
        label="Start CSV files with a byte-order mark (Excel)",
        required=False,
        help_text="Excel then reads the file as UTF-8; other tools do not need it.",
    )
    control_share = forms.IntegerField(
        label="Control group (%)",
        min_value=0,
        max_value=MAX_CONTROL_SHARE,
        initial=0,
        required=False,
        help_text=f"A random share of the consenting audience (0–{MAX_CONTROL_SHARE} %) held "
        "out of the file and recorded, so uplift can be measured. Drawn once per brief: later "
        "exports hold out the same customers.",
    )
    split_variants = forms.BooleanField(
        label="A/B split: spread the approved variants over the customers",
        required=False,
        help_text="Without it every customer gets the best ranked approved variant.",
    )

    def __init__(self, *args: Any, brief: Brief, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.brief = brief
        self.presets = export_presets_for(brief.channel)
        self.fields["preset"].choices = [(p.key, preset_label(p.key)) for p in self.presets]
        if self.presets and "preset" not in self.initial:
            self.initial["preset"] = self.presets[0].key

    def clean_control_share(self) -> int:
        # Not shown once the brief's control group is fixed: blank means none asked for.
        return self.cleaned_data.get("control_share") or 0

    def preset_options(self) -> list[tuple[Any, str]]:
        """(radio option, one-line description) per preset offered, for the template."""
        helps = {p.key: PRESET_HELP.get(p.key, "") for p in self.presets}
        return [(option, helps.get(option.data["value"], "")) for option in self["preset"]]

    def add_service_errors(self, exc) -> None:
        """A service's ValidationError, each message under the field it names."""
        errors = getattr(exc, "error_dict", None)
        if errors is None:
            self.add_error(None, exc)
            return
        for key, messages in errors.items():
            self.add_error(key if key in self.fields else None, messages)
