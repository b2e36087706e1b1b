"""Business rules as a run stores them: JSON with product ids, checked against the catalog.

Shape (every key optional; defaults in `recommendations.algorithms.postprocess.BusinessRules`)::

    {"top_n": 20, "exclude_bought": true, "in_stock_only": true,
     "include_categories": ["Home > Kitchen"], "exclude_categories": [],
     "price_min": null, "price_max": 50.0,
     "boost": {"<product id>": 1.5}, "boost_categories": {"Home": 1.2},
     "bury": [<product id>, …], "pin": [<product id>, …], "mmr_lambda": 1.0}
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

from marketing.models import Catalog, Product
from recommendations.algorithms.postprocess import BusinessRules, RulesError


def rules_validate(*, catalog: Catalog, data: Any) -> dict[str, Any]:
    """The rules in canonical form (all keys, product ids as in the catalog), or a
    ValidationError keyed by the rule's name, e.g. {"pin": ["unknown item 42"]} for a
    product that is not in this catalog."""
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ValidationError({"rules": "Rules must be an object."})
    mentioned: set[int] = set()
    for name in ("boost", "bury", "pin"):
        values = data.get(name) or {}
        for value in values.keys() if isinstance(values, dict) else values:
            try:
                mentioned.add(int(value))
            except (TypeError, ValueError):
                raise ValidationError({name: f"{value!r} is not a product id."}) from None
    known = list(
        Product.objects.filter(catalog=catalog, pk__in=mentioned).values_list("pk", flat=True)
    )
    index = {pk: i for i, pk in enumerate(known)}
    try:
        rules = BusinessRules.from_dict(data, item_index=index)
    except RulesError as exc:
        message = exc.message.replace("unknown item", "no such product in this catalog:")
        raise ValidationError({exc.field: message}) from None
    return rules.to_dict(item_ids=known)


def rules_for_artifact(data: dict[str, Any], item_index: dict[int, int]) -> BusinessRules:
    """The stored rules with product ids mapped to the artifact's item indices. Products
    deleted since the run started are dropped from boost / bury / pin."""
    data = dict(data)
    data["boost"] = {k: v for k, v in (data.get("boost") or {}).items() if int(k) in item_index}
    for name in ("bury", "pin"):
        data[name] = [p for p in data.get(name) or [] if int(p) in item_index]
    return BusinessRules.from_dict(data, item_index=item_index)
