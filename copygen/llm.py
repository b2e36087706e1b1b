"""The optional LLM provider, configured by settings (``COPY_LLM_*``, see README).

One provider per process, so that its circuit breaker remembers failures across the drafts
of a worker; it is rebuilt when the settings change (``override_settings`` in tests).
"""

from __future__ import annotations

import threading

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from copygen.engine.llm import LLMConfig, LLMProvider

_lock = threading.Lock()
_current: tuple[tuple, LLMProvider | None] | None = None


def _settings_key() -> tuple:
    return (
        str(getattr(settings, "COPY_LLM_BASE_URL", "") or "").strip(),
        str(getattr(settings, "COPY_LLM_MODEL", "") or "").strip(),
        str(getattr(settings, "COPY_LLM_API_KEY", "") or ""),
        getattr(settings, "COPY_LLM_TIMEOUT_S", 20.0),
        getattr(settings, "COPY_LLM_MAX_RETRIES", 2),
    )


def _build(key: tuple) -> LLMProvider | None:
    base_url, model, api_key, timeout_s, max_retries = key
    if not base_url:
        return None
    if not model:
        raise ImproperlyConfigured("COPY_LLM_MODEL is required when COPY_LLM_BASE_URL is set")
    try:
        timeout = float(timeout_s)
    except (TypeError, ValueError):
        raise ImproperlyConfigured(
            f"COPY_LLM_TIMEOUT_S must be a number of seconds, got {timeout_s!r}"
        ) from None
    if not timeout > 0 or timeout == float("inf"):
        raise ImproperlyConfigured(f"COPY_LLM_TIMEOUT_S must be positive, got {timeout_s!r}")
    try:
        retries = int(max_retries)
    except (TypeError, ValueError):
        raise ImproperlyConfigured(
            f"COPY_LLM_MAX_RETRIES must be an integer, got {max_retries!r}"
        ) from None
    if retries < 0 or isinstance(max_retries, bool):
        raise ImproperlyConfigured(f"COPY_LLM_MAX_RETRIES must be 0 or more, got {max_retries!r}")
    try:
        config = LLMConfig(
            base_url=base_url,
            model=model,
            api_key=api_key,
            timeout_s=timeout,
            max_retries=retries,
        )
    except ValueError as e:
        raise ImproperlyConfigured(f"COPY_LLM_*: {e}") from None
    return LLMProvider(config)


def provider_from_settings() -> LLMProvider | None:
    """The process's LLM provider, or None when ``COPY_LLM_BASE_URL`` is empty.
    ImproperlyConfigured on bad settings."""
    global _current
    key = _settings_key()
    with _lock:
        if _current is not None and _current[0] == key:
            return _current[1]
        provider = _build(key)
        _current = (key, provider)
        return provider


__all__ = ["provider_from_settings"]
