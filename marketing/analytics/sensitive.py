"""Sensitive customer attributes: the list, and the guard every feature builder goes through.

Protected characteristics (gender, age, ethnicity, religion…) must never steer a model or a
clustering, not even indirectly through a customer attribute someone imported. Rather than
trusting each builder to remember, every builder that reads the customers frame calls
`strip_sensitive` first (which removes matching columns *and* keys inside the
``attributes`` dict) and `assert_no_sensitive` on its final feature names.

Matching is on a normalised name (lower case, runs of non-alphanumerics -> ``_``,
camelCase split): a name is sensitive when one of its ``_``-separated tokens is a sensitive
word (``customer_gender``, ``Age``, ``avg_age``) or its token sequence contains a sensitive
phrase (``date_of_birth``, ``YearOfBirth``). ``page_views`` or ``language`` do not match,
because ``age`` is compared with whole tokens only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # settings import this module: pandas (~90 MB) only where frames are used
    import pandas as pd

DEFAULT_SENSITIVE: tuple[str, ...] = ("gender", "age", "date_of_birth", "ethnicity", "religion")

# Close synonyms, expanded whenever the base name is in the configured list.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "gender": ("sex", "gender_identity", "pronoun", "pronouns"),
    "age": (
        "birth_year",
        "year_of_birth",
        "yob",
        "age_band",
        "age_group",
        "age_range",
        "ages",
    ),
    "date_of_birth": ("dob", "birth_date", "birthdate", "birthday", "born", "born_on"),
    "ethnicity": ("ethnic", "ethnic_group", "ethnic_origin", "race", "racial_origin"),
    "religion": ("religious", "religious_belief", "faith", "belief", "beliefs"),
}


class SensitiveFeatureError(ValueError):
    """A sensitive attribute reached a feature matrix: a bug, never a user error."""


def normalise_name(name: str) -> str:
    """``"YearOfBirth"`` / ``"year-of birth"`` -> ``"year_of_birth"`` (the matching form)."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", str(name))
    return re.sub(r"[^0-9a-z]+", "_", text.lower()).strip("_")


def sensitive_terms(sensitive: Iterable[str] | None = None) -> frozenset[str]:
    """The configured names plus their synonyms, normalised."""
    base = DEFAULT_SENSITIVE if sensitive is None else tuple(sensitive)
    terms: set[str] = set()
    for name in base:
        key = normalise_name(name)
        if not key:
            continue
        terms.add(key)
        terms.update(normalise_name(s) for s in SYNONYMS.get(key, ()))
    return frozenset(terms)


def is_sensitive(name: str, sensitive: Iterable[str] | None = None) -> bool:
    """True when ``name`` is (or contains, as whole tokens) a sensitive term."""
    return _matches(normalise_name(name), sensitive_terms(sensitive))


def _matches(normalised: str, terms: frozenset[str]) -> bool:
    if not normalised:
        return False
    tokens = normalised.split("_")
    padded = "_" + normalised + "_"
    for term in terms:
        if "_" in term:
            if "_" + term + "_" in padded:
                return True
        elif term in tokens:
            return True
    return False


@dataclass(frozen=True)
class StrippedCustomers:
    """The customers frame without sensitive data, and what was removed (for the UI)."""

    customers: pd.DataFrame
    dropped: tuple[str, ...]  # column names and "attributes.<key>" entries, sorted


def strip_sensitive(
    customers: pd.DataFrame, sensitive: Iterable[str] | None = None
) -> StrippedCustomers:
    """Drop sensitive columns and sensitive keys of the ``attributes`` dicts.

    Returns a copy; the input is not changed. Keys are checked per distinct key, so a frame
    of 100k customers with a handful of attribute keys costs one pass over the dicts.
    """
    terms = sensitive_terms(sensitive)
    columns = [c for c in customers.columns if _matches(normalise_name(c), terms)]
    out = customers.drop(columns=columns)
    dropped = set(columns)
    if "attributes" in out.columns:
        keys: set[str] = set()
        for attrs in out["attributes"]:
            if isinstance(attrs, dict):
                keys.update(attrs)
        bad = {k for k in keys if _matches(normalise_name(k), terms)}
        if bad:
            out["attributes"] = [
                {k: v for k, v in a.items() if k not in bad} if isinstance(a, dict) else {}
                for a in out["attributes"]
            ]
            dropped.update(f"attributes.{k}" for k in bad)
    return StrippedCustomers(customers=out, dropped=tuple(sorted(dropped)))


def assert_no_sensitive(
    feature_names: Sequence[str], sensitive: Iterable[str] | None = None
) -> None:
    """Raise `SensitiveFeatureError` if any feature name looks sensitive.

    Feature names of attributes are ``attr_<key>``, so the token check catches them too.
    """
    terms = sensitive_terms(sensitive)
    bad = [f for f in feature_names if _matches(normalise_name(f), terms)]
    if bad:
        raise SensitiveFeatureError(f"sensitive attributes among model features: {bad}")


@dataclass(frozen=True)
class FeatureReport:
    """What a model or clustering was fed, for the UI ("features used")."""

    used: tuple[str, ...]
    dropped_sensitive: tuple[str, ...]
    sensitive_terms: tuple[str, ...]


def feature_report(
    used: Sequence[str], dropped: Sequence[str], sensitive: Iterable[str] | None = None
) -> FeatureReport:
    """Check ``used`` once more and package it with what the guard removed."""
    assert_no_sensitive(used, sensitive)
    return FeatureReport(
        used=tuple(used),
        dropped_sensitive=tuple(dropped),
        sensitive_terms=tuple(sorted(sensitive_terms(sensitive))),
    )
