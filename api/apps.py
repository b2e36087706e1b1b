from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "API"

    def ready(self) -> None:
        # Read the API's environment variables once at start-up, so a bad value stops the
        # process (ImproperlyConfigured) instead of the first request.
        from api import conf

        conf.check()
