"""Model runs and the recommendations they store.

A `ModelRun` trains and evaluates recommenders on a catalog's purchases, then scores every
customer (and every segment) under the marketer's business rules. Its `Recommendation` rows
become visible at once when the run turns current (`is_current`, one per catalog); readers
always go through the current run, so a rerun replaces the lists atomically.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from marketing.models import Catalog, Customer, Job, Product, Segment


class ModelRun(models.Model):
    """One training + scoring run of a catalog.

    States: queued → training → scoring → succeeded | failed | cancelled. Training reads the
    purchases, compares the algorithms on a validation split within the budget, refits the
    best on all data and saves the artifact (`artifact`, a pickle under DATA_DIR); scoring
    writes the lists in customer batches (`ModelRunBatch`); the last step writes the segment
    lists and flips `is_current` in one transaction.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        TRAINING = "training", "Training"
        SCORING = "scoring", "Scoring"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE = (Status.QUEUED, Status.TRAINING, Status.SCORING)

    catalog = models.ForeignKey(Catalog, on_delete=models.CASCADE, related_name="model_runs")
    job = models.ForeignKey(
        Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="model_runs"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    algorithms = models.JSONField(
        default=list, blank=True, help_text="Algorithms to compare; empty = automatic choice"
    )
    rules = models.JSONField(default=dict, blank=True, help_text="Business rules (product ids)")
    budget_s = models.PositiveIntegerField(default=60, help_text="Tuning time for all algorithms")
    data_info = models.JSONField(
        default=dict, blank=True, help_text="Snapshot: purchases, customers, products, as of"
    )
    split_info = models.JSONField(default=dict, blank=True)
    comparison = models.JSONField(
        default=dict, blank=True, help_text="Metrics per model and segment, validation trials"
    )
    selected_algorithm = models.CharField(max_length=64, blank=True)
    selected_params = models.JSONField(default=dict, blank=True)
    artifact = models.CharField(
        max_length=300, blank=True, help_text="Pickle of the fitted models, relative to DATA_DIR"
    )
    scoring_mode = models.CharField(
        max_length=8, blank=True, help_text="chord (batches on any worker) or inline"
    )
    batches_total = models.PositiveIntegerField(default=0)
    customers = models.PositiveIntegerField(default=0, help_text="Customers with a list")
    recommendations = models.PositiveIntegerField(default=0, help_text="Rows stored")
    segments = models.PositiveIntegerField(default=0, help_text="Segments with a list")
    is_current = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="model_runs",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["catalog"],
                condition=Q(is_current=True),
                name="model_run_one_current_per_catalog",
            )
        ]
        indexes = [models.Index(fields=["catalog", "created_at"], name="model_run_catalog_time")]

    def __str__(self) -> str:
        return f"Model run #{self.pk} of {self.catalog}"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def top_n(self) -> int:
        return int(self.rules.get("top_n", 20)) if isinstance(self.rules, dict) else 20


class ModelRunBatch(models.Model):
    """One customer batch of a run's scoring: customers [first_customer_id, last_customer_id]
    of the artifact's customer order. Done once its rows are written (same transaction)."""

    run = models.ForeignKey(ModelRun, on_delete=models.CASCADE, related_name="batches")
    index = models.PositiveIntegerField()
    customers = models.PositiveIntegerField(default=0)
    first_customer_id = models.BigIntegerField()
    last_customer_id = models.BigIntegerField()
    done = models.BooleanField(default=False)
    rows = models.PositiveIntegerField(default=0)
    runs = models.PositiveIntegerField(default=0, help_text="Times it was written")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "index"]
        constraints = [
            models.UniqueConstraint(fields=["run", "index"], name="model_run_batch_unique")
        ]

    def __str__(self) -> str:
        return f"Batch {self.index} of run #{self.run_id}"


class Recommendation(models.Model):
    """One product in a customer's or a segment's list of a run.

    Exactly one of customer / segment is set. The reason is rendered at write time
    (`reason_text`, with product titles as they were) and kept as data too (`reason_kind`,
    `reason_product_ids`: the history products it cites, `reason_data`: its numbers).
    """

    class Kind(models.TextChoices):
        DISCOVER = "discover", "Discover"
        BUY_AGAIN = "buy_again", "Buy again"

    # Reached through the run (the unique constraints below lead with it): no index of its own.
    run = models.ForeignKey(
        ModelRun, on_delete=models.CASCADE, related_name="recommendation_rows", db_index=False
    )
    # Denormalised for reports; deleting a catalog deletes its runs first.
    catalog = models.ForeignKey(Catalog, on_delete=models.CASCADE, related_name="+", db_index=False)
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, null=True, blank=True, related_name="recommendations"
    )
    segment = models.ForeignKey(
        Segment,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="recommendations",
        db_index=False,
    )
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.DISCOVER)
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="recommendations")
    rank = models.PositiveSmallIntegerField(help_text="1 = first")
    score = models.FloatField(help_text="Relevance after the rules' boosts")
    reason_kind = models.CharField(max_length=32)
    reason_text = models.CharField(max_length=500)
    reason_product_ids = models.JSONField(default=list, blank=True)
    reason_data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["run", "customer", "segment", "kind", "rank"]
        constraints = [
            models.CheckConstraint(
                condition=Q(customer__isnull=False, segment__isnull=True)
                | Q(customer__isnull=True, segment__isnull=False),
                name="recommendation_customer_xor_segment",
            ),
            # Not partial: it also serves "all rows of a run" (deletes, counts). Segment rows
            # (customer NULL) never collide in it.
            models.UniqueConstraint(
                fields=["run", "customer", "kind", "rank"],
                name="recommendation_customer_rank_unique",
            ),
            models.UniqueConstraint(
                fields=["run", "segment", "kind", "rank"],
                condition=Q(segment__isnull=False),
                name="recommendation_segment_rank_unique",
            ),
        ]
        indexes = [
            # For a segment's deletion (cascade); most rows have no segment.
            models.Index(
                fields=["segment"],
                condition=Q(segment__isnull=False),
                name="recommendation_segment",
            )
        ]

    def __str__(self) -> str:
        return f"#{self.rank} {self.product_id} for {self.customer_id or self.segment_id}"
