from django.apps import AppConfig


class CopygenConfig(AppConfig):
    name = "copygen"
    verbose_name = "Copy studio"

    def ready(self) -> None:
        # Registers the drafting job's task in marketing.tasks.JOB_TASKS, so job_enqueue and
        # the worker's requeue of orphaned jobs find it in every process.
        from copygen import tasks  # noqa: F401
