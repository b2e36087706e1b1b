"""Signal hooks (interfaces only: each calls a service).

- Worker start-up: resume or fail model runs whose scoring batches stalled (their jobs are
  delegated, so marketing's requeue of orphaned jobs leaves them to us), and delete model
  files no run needs (e.g. of runs whose catalog was deleted).
- `marketing.services.customers.customer_erased`: retire the model files that hold the customer's
  purchase history.
"""

from __future__ import annotations

from celery.signals import worker_ready
from django.dispatch import receiver

from marketing.services.customers import customer_erased


@worker_ready.connect
def resume_stalled_model_runs(**_: object) -> None:
    from recommendations.services.retention import artifacts_orphaned_delete
    from recommendations.services.runs import model_runs_sweep

    model_runs_sweep()
    artifacts_orphaned_delete()


@receiver(customer_erased, dispatch_uid="recommendations.forget_erased_customer")
def forget_erased_customer(sender, *, customer_id: int, catalog_ids: list[int], **_) -> None:
    from recommendations.services.retention import model_runs_forget_customer

    model_runs_forget_customer(customer_id=customer_id, catalog_ids=catalog_ids)
