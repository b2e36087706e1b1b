"""Signal hooks (interfaces only: each calls a service).

- Worker start-up: resume or fail model runs whose scoring batches stalled (their jobs are
  delegated, so marketing's requeue of orphaned jobs leaves them to us), and delete model
  files no run needs (e.g. of runs whose catalog was deleted).
- `marketing.services.customers.customer_erased`: retire the model files that hold the customer's
  purchase history.
"""

from __future__ import annotations

from pathlib import Path

from celery.signals import worker_ready
from django.conf import settings
from django.dispatch import receiver

from marketing.services.customers import customer_erased
from recommendations.models import ModelRun


@worker_ready.connect
def resume_stalled_model_runs(**_: object) -> None:
    """Sweep stalled runs and orphaned model files as a worker starts.

    Runs in the worker's main process, and the services behind it load numpy and pandas
    (about 150 MB): each is imported only when there is something to do (a run scoring, a
    file under DATA_DIR/models), so a worker that only exports stays lean.
    """
    if ModelRun.objects.filter(status=ModelRun.Status.SCORING).exists():
        from recommendations.services.runs import model_runs_sweep

        model_runs_sweep()
    if _model_files_exist():
        from recommendations.services.retention import artifacts_orphaned_delete

        artifacts_orphaned_delete()


def _model_files_exist() -> bool:
    """Whether artifacts.models_dir() holds anything (named here: artifacts loads pandas)."""
    try:
        return any((Path(settings.DATA_DIR) / "models").iterdir())
    except FileNotFoundError:
        return False


@receiver(customer_erased, dispatch_uid="recommendations.forget_erased_customer")
def forget_erased_customer(sender, *, customer_id: int, catalog_ids: list[int], **_) -> None:
    from recommendations.services.retention import model_runs_forget_customer

    model_runs_forget_customer(customer_id=customer_id, catalog_ids=catalog_ids)
