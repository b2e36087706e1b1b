"""The copy studio's records: briefs, their drafting chunks, drafts, revisions and reviews.

A `Brief` says what to write (audience, channel, tone, locales, products, brand rules); its
drafting `Job` (kind COPY_DRAFT) cuts the audience into `DraftChunk` rows and writes the
`Draft` rows of one chunk in one transaction, so a re-delivered job resumes where it stopped.
Every change of a draft's text is a `DraftRevision` (generated, edited, LLM); every review
action (approve, reject, reopen) is a `DraftReview`. An approved draft is locked until an
approver reopens it.

An `Export` (job kind COPY_EXPORT, see copygen.services.exports) writes a brief's approved
copy as a file for a campaign tool: one `ExportRecipient` per row written (export, draft,
customer, variant), so campaign results can be joined back to the draft and variant; the
brief's `ControlMember`s are the customers held out of every export of the brief.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import models
from django.db.models import Q
from django.urls import reverse

from copygen.engine.types import CHANNELS, LOCALES, TONES
from copygen.exporting import PRESETS
from marketing.models import Catalog, Customer, Job, Segment
from recommendations.models import ModelRun

CHANNEL_LABELS = {
    "email": "Email",
    "sms": "SMS",
    "push": "Push notification",
    "google_ads": "Google search ad",
    "meta_ads": "Meta ad",
    "product_text": "Product description",
}
# The customer consent copy of each channel needs before it reaches that customer (None:
# none needed — product text is not sent to anyone). Exports and the API both apply it.
CHANNEL_CONSENT: dict[str, str | None] = {
    "email": "consent_email",
    "sms": "consent_sms",
    "push": "consent_push",
    "google_ads": "consent_ads",
    "meta_ads": "consent_ads",
    "product_text": None,
}
LOCALE_LABELS = {
    "en": "English",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "zh": "Chinese",
}


class Brief(models.Model):
    """What to write, for whom, and under which brand rules."""

    class Audience(models.TextChoices):
        SEGMENT = "segment", "One set of drafts for the segment"
        CUSTOMERS = "customers", "One draft per customer of the segment"

    class Source(models.TextChoices):
        RECOMMENDATIONS = "recommendations", "Recommended products"
        PRODUCTS = "products", "Hand-picked products"

    catalog = models.ForeignKey(Catalog, on_delete=models.CASCADE, related_name="briefs")
    name = models.CharField(max_length=200)
    audience = models.CharField(max_length=16, choices=Audience.choices, default=Audience.SEGMENT)
    # Null once the segment is gone: a profile refresh re-creates learned segments and drops
    # RFM groups that emptied, and a rule segment may be deleted; the brief then asks for
    # another segment before it drafts again (PROTECT would make those refreshes fail).
    segment = models.ForeignKey(
        Segment, on_delete=models.SET_NULL, null=True, related_name="briefs"
    )
    channel = models.CharField(max_length=16, choices=[(c, CHANNEL_LABELS[c]) for c in CHANNELS])
    tone = models.CharField(
        max_length=16, choices=[(t, t.capitalize()) for t in TONES], default="friendly"
    )
    # Locales to draft in; with `customer_language` a per-customer brief drafts each customer
    # in their own language when it is one of LOCALES, else in the first of these.
    locales = models.JSONField(default=list)
    customer_language = models.BooleanField(default=False)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.RECOMMENDATIONS)
    # None: the catalog's current run when the job starts (the job records which one it used).
    model_run = models.ForeignKey(
        ModelRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="briefs"
    )
    products = models.ManyToManyField("marketing.Product", blank=True, related_name="briefs")
    products_per_message = models.PositiveSmallIntegerField(default=1)
    variants = models.PositiveSmallIntegerField(default=3)
    occasion = models.CharField(max_length=40, blank=True, help_text="Occasion key or empty")
    sms_segments = models.PositiveSmallIntegerField(default=1)
    voice = models.CharField(max_length=300, blank=True, help_text="Comma-separated descriptors")
    banned_words = models.TextField(blank=True, help_text="One word or phrase per line")
    disclaimer = models.CharField(max_length=500, blank=True)
    sender = models.CharField(max_length=100, blank=True, help_text="Brand name for sign-offs")
    job = models.ForeignKey(
        Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="briefs"
    )
    # What the last drafting job learnt and used: sentiment model figures, run id, counts.
    info = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [
            ("approve_draft", "Can approve, reject and reopen drafts"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("copygen:brief-detail", args=[self.pk])

    @property
    def banned_list(self) -> list[str]:
        return [w.strip() for w in self.banned_words.splitlines() if w.strip()]

    @property
    def voice_list(self) -> list[str]:
        return [v.strip() for v in self.voice.split(",") if v.strip()]


class DraftChunk(models.Model):
    """A slice of a drafting job's audience: customers (or the one segment) it drafts in one
    transaction. ``keys``: the audience keys ("customer:<pk>" / "segment:<pk>")."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="draft_chunks")
    brief = models.ForeignKey(Brief, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    keys = models.JSONField(default=list)
    size = models.PositiveIntegerField(default=0, help_text="Audience items: len(keys)")
    done = models.BooleanField(default=False)
    drafts = models.PositiveIntegerField(default=0)
    dropped = models.PositiveIntegerField(default=0)
    # What the chunk wrote: {"items": audience items with drafts, "locales": [...],
    # "reasons": {why an item or variant was dropped: count}} (summed when the job ends).
    report = models.JSONField(default=dict, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="draft_chunk_unique")]

    def __str__(self) -> str:
        return f"Chunk {self.index} of job #{self.job_id}"


class Draft(models.Model):
    """One variant of copy for one audience item (a customer, or the brief's segment) in
    one locale. ``fields`` holds the text per channel field (lists for ad headlines)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending review"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    brief = models.ForeignKey(Brief, on_delete=models.CASCADE, related_name="drafts")
    catalog = models.ForeignKey(Catalog, on_delete=models.CASCADE, related_name="+")
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    audience_key = models.CharField(max_length=40)  # "customer:<pk>" | "segment:<pk>"
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, null=True, blank=True, related_name="drafts"
    )
    # SET_NULL: a profile refresh re-creates learned segments; their (approved) copy stays,
    # still keyed by audience_key.
    segment = models.ForeignKey(
        Segment, on_delete=models.SET_NULL, null=True, blank=True, related_name="drafts"
    )
    locale = models.CharField(max_length=8, choices=[(c, LOCALE_LABELS[c]) for c in LOCALES])
    variant = models.PositiveSmallIntegerField(help_text="1 = best ranked")
    channel = models.CharField(max_length=16)
    tone = models.CharField(max_length=16)
    fields = models.JSONField(default=dict)
    product_ids = models.JSONField(default=list, help_text="Product pks the copy is about")
    frames = models.JSONField(default=list, blank=True)
    notes = models.JSONField(default=list, blank=True)
    score = models.FloatField(default=0)
    source = models.CharField(max_length=16, default="template")  # template | llm | edit
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # Check results of the current text: [{check, ok, field, message, severity}] (failures
    # only), whether any error fails, and ",name,name," of the failing checks for filtering.
    checks = models.JSONField(default=list, blank=True)
    passes = models.BooleanField(default=True)
    failing = models.CharField(max_length=300, blank=True)
    revision = models.PositiveIntegerField(default=1)
    last_edited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["brief", "audience_key", "locale", "variant"]
        constraints = [
            models.UniqueConstraint(
                fields=["brief", "audience_key", "locale", "variant"], name="draft_unique"
            ),
            models.CheckConstraint(
                condition=~Q(customer__isnull=False, segment__isnull=False),
                name="draft_customer_or_segment",
            ),
        ]
        indexes = [
            models.Index(fields=["brief", "status"], name="draft_brief_status"),
            models.Index(fields=["customer", "-created_at"], name="draft_customer_recent"),
        ]

    def __str__(self) -> str:
        return f"Draft #{self.pk} ({self.channel}, {self.locale})"

    def get_absolute_url(self) -> str:
        return reverse("copygen:draft-detail", args=[self.pk])

    @property
    def is_locked(self) -> bool:
        return self.status == self.Status.APPROVED


class DraftRevision(models.Model):
    """The text of a draft at one revision: generated, edited by a person, or from an LLM."""

    draft = models.ForeignKey(Draft, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    fields = models.JSONField(default=dict)
    source = models.CharField(max_length=16)  # template | llm | edit
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    passes = models.BooleanField(default=True)
    failing = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["draft", "number"]
        constraints = [
            models.UniqueConstraint(fields=["draft", "number"], name="draft_revision_unique")
        ]

    def __str__(self) -> str:
        return f"Revision {self.number} of draft #{self.draft_id}"


class DraftReview(models.Model):
    """One review action on a draft, with its comment (the audit trail of approvals)."""

    class Action(models.TextChoices):
        APPROVE = "approve", "Approved"
        REJECT = "reject", "Rejected"
        REOPEN = "reopen", "Reopened"

    draft = models.ForeignKey(Draft, on_delete=models.CASCADE, related_name="reviews")
    action = models.CharField(max_length=16, choices=Action.choices)
    revision = models.PositiveIntegerField()
    comment = models.TextField(blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["draft", "created_at"]

    def __str__(self) -> str:
        return f"{self.get_action_display()} draft #{self.draft_id}"


_PRESET_LABELS = {"braze_csv": "Braze (CSV)", "braze_json": "Braze (JSON for /users/track)"}


def preset_label(key: str) -> str:
    """An export preset's name as the pages show it (Braze's two formats told apart)."""
    preset = PRESETS.get(key)
    return _PRESET_LABELS.get(key) or (preset.label if preset else key)


class ExportStorage(FileSystemStorage):
    """Export files under DATA_DIR/exports (read when used, so a changed DATA_DIR counts).
    No URL: files are never served directly, only by the permission-checked download view."""

    @property
    def base_location(self) -> str:  # type: ignore[override]
        return str(Path(settings.DATA_DIR) / "exports")

    @property
    def location(self) -> str:  # type: ignore[override]
        return os.path.abspath(self.base_location)

    @property
    def base_url(self) -> None:  # type: ignore[override]
        return None

    def url(self, name: str | None) -> str:
        raise ValueError("export files have no URL: download them through the export's page")


_export_storage = ExportStorage()


def export_storage() -> ExportStorage:
    return _export_storage


class Export(models.Model):
    """A file of a brief's approved copy in one preset's format, written by a job.

    Its state is its job's (queued, running, succeeded, failed, cancelled). ``summary``
    holds what the job counted: {"audience", "consenting", "control_new", "no_approved", …};
    ``skipped`` the rows left out by reason code (no_consent, control, missing_identifier,
    too_long, …); ``warnings`` the first WARNINGS_KEPT warnings ({draft_id, customer_pk,
    customer, column, reason, code, skipped}), ``warning_counts`` all of them per code.
    ``file_removed`` says why a finished export has no file any more (an erasure).
    """

    WARNINGS_KEPT = 200

    catalog = models.ForeignKey(Catalog, on_delete=models.CASCADE, related_name="+")
    brief = models.ForeignKey(Brief, on_delete=models.CASCADE, related_name="exports")
    preset = models.CharField(max_length=40)
    channel = models.CharField(max_length=16)
    excel_bom = models.BooleanField(default=False)
    control_share = models.PositiveSmallIntegerField(
        default=0, help_text="Percent of the consenting audience held out (0-50)"
    )
    split_variants = models.BooleanField(
        default=False, help_text="Spread the approved variants over the customers (A/B test)"
    )
    seed = models.BigIntegerField(help_text="Seeds the control group and the variant split")
    job = models.ForeignKey(
        Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="exports"
    )
    file = models.FileField(storage=export_storage, max_length=255, blank=True)
    file_name = models.CharField(max_length=255, blank=True, help_text="Name of the download")
    file_size = models.BigIntegerField(default=0)
    file_removed = models.CharField(max_length=300, blank=True)
    rows_written = models.PositiveIntegerField(default=0)
    rows_skipped = models.PositiveIntegerField(default=0)
    control_size = models.PositiveIntegerField(default=0)
    skipped = models.JSONField(default=dict, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    warning_counts = models.JSONField(default=dict, blank=True)
    summary = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        permissions = [("download_export", "Can download export files")]
        constraints = [
            models.CheckConstraint(
                condition=Q(control_share__lte=50), name="export_control_share_at_most_50"
            )
        ]

    def __str__(self) -> str:
        return f"Export #{self.pk} ({self.preset})"

    def get_absolute_url(self) -> str:
        return reverse("copygen:export-detail", args=[self.pk])

    @property
    def preset_label(self) -> str:
        return preset_label(self.preset)

    @property
    def status(self) -> str:
        return self.job.status if self.job_id and self.job else Job.Status.FAILED

    @property
    def has_file(self) -> bool:
        return bool(self.file) and self.status == Job.Status.SUCCEEDED


class ExportRecipient(models.Model):
    """One row of an export's file: which customer got which draft (variant, locale).

    These rows are the drafts' export marks (``draft.export_recipients``): updating 100k
    draft rows per export would cost more than writing the file. The draft may be deleted
    later (reopened and drafted again); the row keeps its variant and locale so results
    still join to the export and the variant."""

    export = models.ForeignKey(Export, on_delete=models.CASCADE, related_name="recipients")
    draft = models.ForeignKey(
        Draft,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="export_recipients",
    )
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    variant = models.PositiveSmallIntegerField()
    locale = models.CharField(max_length=8)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["export", "customer"], name="export_recipient_unique")
        ]

    def __str__(self) -> str:
        return f"Recipient #{self.pk} (customer #{self.customer_id}, export #{self.export_id})"


class ControlMember(models.Model):
    """A customer held out of a brief's exports so uplift can be measured.

    Drawn once per brief: the first export asking for a control group fixes its share and
    seed, and every later export of the brief holds out the same people (and draws new
    audience members with the same rule). ``export`` is the export that first held them out."""

    export = models.ForeignKey(Export, on_delete=models.CASCADE, related_name="control_members")
    brief = models.ForeignKey(Brief, on_delete=models.CASCADE, related_name="control_members")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["brief", "customer"], name="control_member_unique")
        ]

    def __str__(self) -> str:
        return f"Control member #{self.pk} (customer #{self.customer_id}, brief #{self.brief_id})"


class CampaignResult(models.Model):
    """One recipient's outcome of an export, as the campaign tool reported it.

    Written by the results import (``copygen.services.results_import``): one row per
    (export, customer), so importing a newer report of the same send replaces the older
    numbers instead of adding to them. Control members are never sent anything, so they
    have no row here; their outcome (and the recipients' comparable one) is measured from
    the store's purchase events by ``copygen.selectors_results``. ``delivered`` is None
    when the tool does not report delivery; the rates then divide by ``sent``.
    ``variant`` and ``locale`` are copied from the export's recipient row, which outlives
    a deleted draft.
    """

    export = models.ForeignKey(Export, on_delete=models.CASCADE, related_name="results")
    # Denormalised from the export for per-brief reports.
    brief = models.ForeignKey(Brief, on_delete=models.CASCADE, related_name="results")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    draft = models.ForeignKey(
        Draft, on_delete=models.SET_NULL, null=True, blank=True, related_name="results"
    )
    variant = models.PositiveSmallIntegerField()
    locale = models.CharField(max_length=8)
    channel = models.CharField(max_length=16)
    sent = models.BooleanField(default=True)
    delivered = models.BooleanField(null=True, blank=True)
    opened = models.BooleanField(default=False)
    clicked = models.BooleanField(default=False)
    converted = models.BooleanField(default=False)
    revenue = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    converted_at = models.DateTimeField(null=True, blank=True)
    upload = models.ForeignKey(
        "marketing.Upload", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["export", "customer"], name="campaign_result_unique")
        ]
        indexes = [models.Index(fields=["brief", "variant"], name="campaign_result_brief")]

    def __str__(self) -> str:
        return f"Result of customer #{self.customer_id} in export #{self.export_id}"
