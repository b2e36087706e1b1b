"""What model files keep, and for how long: erasure, retirement, orphans.

A run's model file (the artifact) holds the purchase history of every customer it trained
on. When a customer is erased (the `customer_erased` signal of marketing.services.customers,
sent once the erasure has committed), `model_runs_forget_customer` retires the files of the
ended runs of their catalogs: the file is deleted, ``ModelRun.artifact`` emptied and the reason kept in
``data_info["artifact_retired"]``, so the preview says why it cannot recompute lists. The
stored lists stay (the customer's own rows went with the erasure). A run still active when
the erasure commits checks for itself when it finishes (`erased_in`), and retires its file
then; its batches never write rows for an erased customer.

Ordering: the retirement takes a key-share lock on the catalogs, which a finishing run's
exclusive catalog lock excludes. Either the finish commits first and the retirement then
sees the run ended, or the retirement commits first and the finish, which checks after its
lock, sees the erasure.

`artifacts_orphaned_delete` removes model files that no run needs any more (a run that
ended while its file was being written, a crash between two steps).
"""

from __future__ import annotations

import logging

import numpy as np
from django.db import connection, transaction

from marketing.models import Catalog
from marketing.services.customers import customer_erased_ids
from recommendations.models import ModelRun
from recommendations.services.artifacts import artifact_delete, artifact_files

logger = logging.getLogger(__name__)

ERASURE_RETIRED = (
    "A customer was erased after this run trained, so its model file, which held their "
    "purchase history, was deleted. The stored lists remain; start a new run to preview."
)


def erased_in(customer_ids: np.ndarray) -> bool:
    """Whether any of these customers (a run's artifact order) has been erased since."""
    erased = customer_erased_ids()
    return bool(erased) and bool(np.isin(customer_ids, list(erased)).any())


def artifact_retire(*, run_id: int, reason: str) -> None:
    """Delete the run's model file for good; the run keeps its rows, metrics and history."""
    artifact_delete(run_id)
    run = ModelRun.objects.filter(pk=run_id).only("data_info").first()
    if run is None:
        return
    info = {**(run.data_info or {}), "artifact_retired": reason}
    ModelRun.objects.filter(pk=run_id).update(artifact="", data_info=info)


def _lock_catalogs_key_share(catalog_ids: list[int]) -> None:
    """FOR KEY SHARE on the catalogs: waits for a run that is finishing (it holds FOR UPDATE)
    and for nothing else (profile refreshes hold FOR NO KEY UPDATE)."""
    if connection.vendor != "postgresql" or not catalog_ids:
        return  # SQLite: one writer at a time
    table = Catalog._meta.db_table
    with connection.cursor() as cursor:
        # Only our own table name is interpolated.
        cursor.execute(
            f"SELECT id FROM {table} WHERE id = ANY(%s) ORDER BY id FOR KEY SHARE",
            [list(catalog_ids)],
        )


def model_runs_forget_customer(*, customer_id: int, catalog_ids: list[int]) -> int:
    """After a customer's erasure: retire the model files of the ended runs of these
    catalogs (see the module docstring). Returns the files retired."""
    retired = 0
    with transaction.atomic():
        _lock_catalogs_key_share(catalog_ids)
        runs = (
            ModelRun.objects.filter(catalog_id__in=catalog_ids)
            .exclude(status__in=ModelRun.ACTIVE)
            .exclude(artifact="")
            .values_list("pk", flat=True)
        )
        for run_id in list(runs):
            artifact_retire(run_id=run_id, reason=ERASURE_RETIRED)
            retired += 1
    if retired:
        logger.info("customer %s erased: %s model file(s) retired", customer_id, retired)
    return retired


def artifacts_orphaned_delete() -> int:
    """Delete model files (and drafts) of runs that are gone or neither active nor holding
    an artifact (``ModelRun.artifact`` empty). Listed before the runs are read, so a file
    written meanwhile belongs to a run that is still active and stays. Returns files."""
    files = artifact_files()
    if not files:
        return 0
    runs = ModelRun.objects.filter(pk__in=list(files))
    needed = runs.filter(status__in=ModelRun.ACTIVE) | runs.exclude(artifact="")
    keep = set(needed.values_list("pk", flat=True))
    deleted = 0
    for run_id, paths in files.items():
        if run_id in keep:
            continue
        for path in paths:
            path.unlink(missing_ok=True)
            deleted += 1
    if deleted:
        logger.info("deleted %s orphaned model file(s)", deleted)
    return deleted


__all__ = [
    "ERASURE_RETIRED",
    "artifact_retire",
    "artifacts_orphaned_delete",
    "erased_in",
    "model_runs_forget_customer",
]
