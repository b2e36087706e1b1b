from django.apps import AppConfig


class MarketingConfig(AppConfig):
    name = "marketing"
    verbose_name = "Tailor data"

    def ready(self) -> None:
        from marketing import signals  # noqa: F401  (worker start-up hooks)
