"""The shared domain: catalogs, products, customers, behaviour events and background jobs."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce, NullIf
from django.urls import reverse

# Stock codes that are not products in the UCI Online Retail layout (postage, fees,
# manual adjustments, vouchers). Catalogs may replace this list in the admin.
DEFAULT_NON_PRODUCT_PATTERNS = [
    r"^POST$",
    r"^DOT$",
    r"^M$",
    r"^D$",
    r"^C2$",
    r"^S$",
    r"^B$",
    r"^CRUK$",
    r"^PADS$",
    r"^BANK CHARGES$",
    r"^AMAZONFEE$",
    r"^DCGS",
    r"^GIFT_",
    r"^ADJUST",
]


def default_non_product_patterns() -> list[str]:
    return list(DEFAULT_NON_PRODUCT_PATTERNS)


class Catalog(models.Model):
    name = models.CharField(max_length=200, unique=True)
    currency = models.CharField(max_length=3, default="EUR", help_text="ISO 4217 code")
    default_language = models.CharField(max_length=8, default="en")
    timezone = models.CharField(
        max_length=64, default="UTC", help_text="Time zone of naive timestamps in imported files"
    )
    non_product_patterns = models.JSONField(
        default=default_non_product_patterns,
        blank=True,
        help_text="Regular expressions on SKU for lines that are not products (postage, fees…)",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("marketing:catalog-detail", args=[self.pk])


class Product(models.Model):
    catalog = models.ForeignKey(Catalog, on_delete=models.CASCADE, related_name="products")
    sku = models.CharField(max_length=100)
    title = models.CharField(max_length=500)
    description = models.TextField(blank=True)
    category = models.CharField(max_length=300, blank=True, help_text="Path, e.g. Home > Kitchen")
    brand = models.CharField(max_length=200, blank=True)
    price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    url = models.URLField(max_length=1000, blank=True)
    image_url = models.URLField(max_length=1000, blank=True)
    in_stock = models.BooleanField(default=True)
    derived_category = models.ForeignKey(
        "DerivedCategory",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="products",
        help_text="Category derived from the product text when the catalog has none",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["catalog", "sku"]
        constraints = [
            models.UniqueConstraint(
                fields=["catalog", "sku"], name="product_sku_unique_per_catalog"
            ),
            models.CheckConstraint(
                condition=Q(price__isnull=True) | Q(price__gte=0), name="product_price_not_negative"
            ),
        ]
        indexes = [
            models.Index(fields=["catalog", "category"], name="product_catalog_category"),
            models.Index(fields=["catalog", "price"], name="product_catalog_price"),
            models.Index(fields=["catalog", "title"], name="product_catalog_title"),
        ]

    def __str__(self) -> str:
        return f"{self.sku} · {self.title}"

    def get_absolute_url(self) -> str:
        return reverse("marketing:product-detail", args=[self.pk])


def effective_category(prefix: str = "") -> Coalesce:
    """The category the analytics use: the product's own, else its derived one, else "".

    ``prefix`` reaches the product through a relation, e.g. ``"product__"`` from Event.
    """
    return Coalesce(
        NullIf(F(f"{prefix}category"), Value("")),
        F(f"{prefix}derived_category__name"),
        Value(""),
        output_field=models.CharField(),
    )


class Customer(models.Model):
    """A shopper. Email and name are personal data: never logged, blanked on erasure."""

    external_id = models.CharField(max_length=100, unique=True)
    email = models.EmailField(max_length=254, blank=True)
    name = models.CharField(max_length=200, blank=True)
    country = models.CharField(max_length=100, blank=True)
    language = models.CharField(max_length=8, blank=True)
    consent_email = models.BooleanField(default=False)
    consent_sms = models.BooleanField(default=False)
    consent_push = models.BooleanField(default=False)
    consent_ads = models.BooleanField(default=False)
    attributes = models.JSONField(default=dict, blank=True)
    erased_at = models.DateTimeField(
        null=True, blank=True, help_text="When an admin erased this customer's personal data"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["external_id"]
        indexes = [models.Index(fields=["country"], name="customer_country")]

    def __str__(self) -> str:
        return self.external_id

    def get_absolute_url(self) -> str:
        return reverse("marketing:customer-detail", args=[self.pk])


class EventKind(models.TextChoices):
    VIEW = "view", "View"
    CLICK = "click", "Click"
    CART = "cart", "Add to cart"
    PURCHASE = "purchase", "Purchase"
    RETURN = "return", "Return"
    RATING = "rating", "Rating"
    REVIEW = "review", "Review"
    SEARCH = "search", "Search"
    WISHLIST = "wishlist", "Wishlist"


class Event(models.Model):
    """One behaviour event; the big table.

    The primary key is a 63-bit hash of the event's natural key (catalog, kind, customer,
    product, time, source reference, quantity, value), computed by the importer. That makes
    re-imports idempotent with one index instead of two, and lets bulk loads skip a
    sequence. Foreign keys are checked by the importer (it rejects unknown SKUs and
    customers row by row) rather than by per-row database triggers, which would triple the
    cost of a bulk load; deletes still cascade through the ORM.
    """

    id = models.BigIntegerField(primary_key=True)
    # Each foreign key is the leading column of a composite index below, so Django's own
    # single-column FK indexes would only slow bulk loads down (db_index=False).
    catalog = models.ForeignKey(
        Catalog,
        on_delete=models.CASCADE,
        related_name="events",
        db_constraint=False,
        db_index=False,
    )
    customer = models.ForeignKey(
        Customer,
        on_delete=models.CASCADE,
        related_name="events",
        null=True,
        blank=True,
        db_constraint=False,
        help_text="Empty for anonymous (guest) events",
        db_index=False,
    )
    product = models.ForeignKey(
        Product,
        on_delete=models.CASCADE,
        related_name="events",
        null=True,
        blank=True,
        db_constraint=False,
        db_index=False,
    )
    kind = models.CharField(max_length=16, choices=EventKind.choices)
    quantity = models.IntegerField(default=1)
    value = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    rating = models.SmallIntegerField(null=True, blank=True)
    text = models.TextField(blank=True)
    occurred_at = models.DateTimeField()
    source = models.CharField(max_length=100, blank=True, help_text="Order/invoice/session ref")

    class Meta:
        ordering = ["-occurred_at"]
        # Plus, from migration 0003, (catalog, occurred_at): a BRIN index on PostgreSQL (tiny and
        # nearly free to maintain for time-ordered loads), a B-tree elsewhere.
        indexes = [
            models.Index(fields=["customer", "occurred_at"], name="event_customer_time"),
            models.Index(fields=["product", "occurred_at"], name="event_product_time"),
            # Reviews and ratings only (a sliver of the table): a draft's fact sheet reads its
            # products' reviews on every draft page and edit, and a popular product has tens
            # of thousands of other events that the index above would make it walk.
            models.Index(
                fields=["product", "occurred_at"],
                name="event_review_product_time",
                # Two equalities rather than IN: PostgreSQL prints this condition back the same
                # way after the bulk loader rebuilds the index from pg_indexes' definition.
                condition=Q(kind="review") | Q(kind="rating"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.occurred_at:%Y-%m-%d}"


class Upload(models.Model):
    """A file a user uploaded for import, with what sniffing found (format, columns)."""

    class Kind(models.TextChoices):
        PRODUCTS = "products", "Products"
        CUSTOMERS = "customers", "Customers"
        EVENTS = "events", "Events"
        ONLINE_RETAIL = "online_retail", "Online Retail invoices (products + customers + events)"
        REVIEWS = "reviews", "Product reviews (rating + text)"
        CAMPAIGN_RESULTS = "campaign_results", "Campaign results (per recipient)"

    catalog = models.ForeignKey(Catalog, on_delete=models.CASCADE, related_name="uploads")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    file = models.FileField(upload_to="uploads/%Y/%m/")
    original_name = models.CharField(max_length=255)
    size = models.BigIntegerField()
    detected = models.JSONField(default=dict, blank=True, help_text="Sniffed format and columns")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.original_name


class Job(models.Model):
    """A background run the UI can watch.

    States: queued → running → succeeded | failed | cancelled. A running job whose
    heartbeat is older than JOB_STALE_AFTER_S (its worker died) may be claimed again,
    which bumps `attempts`; its earlier attempt left nothing behind because every job
    writes its output in one transaction.
    """

    class Kind(models.TextChoices):
        IMPORT = "import", "Import"
        PROFILE_REFRESH = "profile_refresh", "Profile refresh"
        MODEL_RUN = "model_run", "Recommendation run"
        COPY_DRAFT = "copy_draft", "Copy drafting"
        COPY_EXPORT = "copy_export", "Copy export"
        RESULTS_IMPORT = "results_import", "Campaign results import"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    kind = models.CharField(max_length=32, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    catalog = models.ForeignKey(
        Catalog, on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs"
    )
    params = models.JSONField(default=dict, blank=True)
    progress_done = models.BigIntegerField(default=0)
    progress_total = models.BigIntegerField(default=0)
    message = models.CharField(max_length=500, blank=True)
    result = models.JSONField(default=dict, blank=True, help_text="Summary counts")
    error = models.TextField(blank=True)
    report_file = models.FileField(upload_to="reports/%Y/%m/", blank=True)
    cancel_requested = models.BooleanField(default=False)
    attempts = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    celery_id = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="jobs"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"], name="job_status_created")]
        permissions = [("import_data", "Can upload and import data")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("marketing:job-detail", args=[self.pk])

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def percent(self) -> int:
        if self.status == self.Status.SUCCEEDED:
            return 100
        if not self.progress_total:
            return 0
        return min(100, int(100 * self.progress_done / self.progress_total))

    @property
    def duration(self):
        if not self.started_at:
            return None
        end = self.finished_at or self.heartbeat_at or self.started_at
        return end - self.started_at


class ProfileRun(models.Model):
    """One computation of a catalog's customer profiles (RFM, CLV, churn) and its quality."""

    catalog = models.ForeignKey(Catalog, on_delete=models.CASCADE, related_name="profile_runs")
    job = models.ForeignKey(
        Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="profile_runs"
    )
    as_of = models.DateTimeField()
    horizon_days = models.PositiveIntegerField(default=0)
    quality = models.JSONField(default=dict, blank=True, help_text="Hold-out quality of the models")
    features = models.JSONField(
        default=dict, blank=True, help_text="Features used and sensitive ones dropped"
    )
    segment_counts = models.JSONField(default=dict, blank=True)
    customers = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Profiles of {self.catalog} as of {self.as_of:%Y-%m-%d}"


class Profile(models.Model):
    """A customer's computed profile in one catalog; replaced as a whole by each refresh.

    Missing numbers are NULL (never 0), so rule segments can compare them in SQL.
    """

    catalog = models.ForeignKey(Catalog, on_delete=models.CASCADE, related_name="profiles")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="profiles")
    run = models.ForeignKey(ProfileRun, on_delete=models.CASCADE, related_name="profiles")
    events = models.PositiveIntegerField(default=0)
    first_seen = models.DateTimeField(null=True, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    first_purchase = models.DateTimeField(null=True, blank=True)
    last_purchase = models.DateTimeField(null=True, blank=True)
    recency_days = models.IntegerField(null=True, blank=True)
    frequency = models.PositiveIntegerField(default=0)
    monetary = models.FloatField(default=0)
    purchase_value = models.FloatField(default=0)
    return_value = models.FloatField(default=0)
    purchased_units = models.BigIntegerField(default=0)
    returned_units = models.BigIntegerField(default=0)
    aov = models.FloatField(null=True, blank=True)
    return_rate = models.FloatField(null=True, blank=True)
    return_rate_value = models.FloatField(null=True, blank=True)
    r_score = models.PositiveSmallIntegerField(default=0)
    f_score = models.PositiveSmallIntegerField(default=0)
    m_score = models.PositiveSmallIntegerField(default=0)
    fm_score = models.PositiveSmallIntegerField(default=0)
    rfm_segment = models.CharField(max_length=32)
    top_categories = models.JSONField(default=list, blank=True)
    top_category = models.CharField(max_length=300, blank=True)
    categories_basis = models.CharField(max_length=16, blank=True)
    favourite_brands = models.JSONField(default=list, blank=True)
    top_brand = models.CharField(max_length=200, blank=True)
    price_ratio = models.FloatField(null=True, blank=True)
    price_band = models.CharField(max_length=16, blank=True)
    preferred_weekday = models.PositiveSmallIntegerField(null=True, blank=True)
    preferred_hour = models.PositiveSmallIntegerField(null=True, blank=True)
    median_gap_days = models.FloatField(null=True, blank=True)
    expected_next_order = models.DateTimeField(null=True, blank=True)
    clv_12m = models.FloatField(null=True, blank=True)
    churn_probability = models.FloatField(null=True, blank=True)
    value_basis = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["catalog", "customer"]
        constraints = [
            models.UniqueConstraint(
                fields=["catalog", "customer"], name="profile_customer_unique_per_catalog"
            )
        ]
        indexes = [models.Index(fields=["catalog", "rfm_segment"], name="profile_catalog_segment")]

    def __str__(self) -> str:
        # Ids only: admin history keeps this text, and it must not name the customer.
        return f"Profile #{self.pk} (customer #{self.customer_id}, catalog #{self.catalog_id})"


class Segment(models.Model):
    """A named group of a catalog's customers: from RFM scores, a rule, or learned clusters.

    RFM and learned segments are rewritten by each profile refresh; their members are
    `SegmentMembership` rows.
    """

    class Kind(models.TextChoices):
        RFM = "rfm", "RFM"
        RULE = "rule", "Rule"
        LEARNED = "learned", "Learned"

    catalog = models.ForeignKey(Catalog, on_delete=models.CASCADE, related_name="segments")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    rule = models.JSONField(default=dict, blank=True)
    description = models.TextField(blank=True)
    size = models.PositiveIntegerField(default=0)
    revenue_share = models.FloatField(null=True, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True, null=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="segments",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["catalog", "kind", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["catalog", "kind", "name"], name="segment_name_unique_per_catalog_kind"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    def get_absolute_url(self) -> str:
        return reverse("marketing:segment-detail", args=[self.pk])


class SegmentMembership(models.Model):
    """A customer in a segment. ``monetary`` copies the member's net spend when the segment
    is materialised, so a page of the biggest spenders reads one index, not every member."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="memberships")
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="segment_memberships"
    )
    monetary = models.FloatField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["segment", "customer"], name="segment_membership_unique"
            )
        ]
        indexes = [
            models.Index(
                fields=["segment", "-monetary", "customer"], name="segment_membership_by_spend"
            )
        ]
        # customer_id is indexed by its ForeignKey ("which segments is this customer in?").

    def __str__(self) -> str:
        # Ids only: admin history keeps this text, and it must not name the customer.
        return f"Membership #{self.pk} (customer #{self.customer_id}, segment #{self.segment_id})"


class DerivedCategory(models.Model):
    """A category derived from product text for a catalog that has none; admins may rename it.

    Products point at it (`Product.derived_category`), so a rename is one UPDATE; the
    analytics use ``Product.category`` when set, else this name.
    """

    catalog = models.ForeignKey(
        Catalog, on_delete=models.CASCADE, related_name="derived_categories"
    )
    name = models.CharField(max_length=300)
    auto_name = models.CharField(max_length=300, help_text="The name the clustering gave it")
    terms = models.JSONField(default=list, blank=True, help_text="Most distinctive terms first")
    size = models.PositiveIntegerField(default=0, help_text="Products in it")
    renamed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    renamed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["catalog", "name"]
        verbose_name_plural = "derived categories"
        constraints = [
            models.UniqueConstraint(
                fields=["catalog", "name"], name="derived_category_name_unique_per_catalog"
            )
        ]

    def __str__(self) -> str:
        return self.name


class AuditEvent(models.Model):
    """Who did what to which record, for actions that must be accountable (erasure, renames).

    Never holds personal data: the object is named by type and primary key only.
    """

    class Action(models.TextChoices):
        CUSTOMER_ERASED = "customer_erased", "Customer erased"
        CATEGORY_RENAMED = "category_renamed", "Derived category renamed"
        SEGMENT_CREATED = "segment_created", "Rule segment created"
        SEGMENT_CHANGED = "segment_changed", "Rule segment changed"
        SEGMENT_DELETED = "segment_deleted", "Rule segment deleted"
        BRIEF_CREATED = "brief_created", "Brief created"
        BRIEF_CHANGED = "brief_changed", "Brief changed"
        BRIEF_DELETED = "brief_deleted", "Brief deleted"
        BRIEF_DRAFTING_STARTED = "brief_drafting_started", "Drafting started"
        DRAFT_EDITED = "draft_edited", "Draft edited"
        DRAFT_APPROVED = "draft_approved", "Draft approved"
        DRAFT_REJECTED = "draft_rejected", "Draft rejected"
        DRAFT_REOPENED = "draft_reopened", "Draft reopened"
        EXPORT_CREATED = "export_created", "Export started"
        EXPORT_DOWNLOADED = "export_downloaded", "Export downloaded"
        API_TOKEN_CREATED = "api_token_created", "API token created"
        API_TOKEN_REVOKED = "api_token_revoked", "API token revoked"
        RESULTS_IMPORTED = "results_imported", "Campaign results imported"
        DATA_IMPORTED = "data_imported", "Data imported"
        CATALOG_CREATED = "catalog_created", "Catalog created"
        CATALOG_CHANGED = "catalog_changed", "Catalog settings changed"
        CATALOG_DELETED = "catalog_deleted", "Catalog deleted"

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="audit_events",
    )
    actor_username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64, choices=Action.choices)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    details = models.JSONField(default=dict, blank=True, help_text="Counts and ids, never PII")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.object_type} {self.object_id}"
