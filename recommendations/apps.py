from django.apps import AppConfig


class RecommendationsConfig(AppConfig):
    name = "recommendations"
    verbose_name = "Recommendations"

    def ready(self) -> None:
        # Registers the model-run job task in marketing.tasks.JOB_TASKS, so job_enqueue and
        # the worker's requeue of orphaned jobs find it in every process; connects the
        # worker start-up sweep and the erasure hook.
        from recommendations import signals, tasks  # noqa: F401
