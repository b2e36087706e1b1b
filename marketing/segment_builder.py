"""The rule builder's form: a rule tree as flat form fields and back, with readable errors.

This is an interface module (like a form): it turns request data into a rule tree for the
services and selectors, and a tree into what the templates render. It never writes.

How the tree travels in the form: every node posts a hidden ``node`` input holding its id,
in document order. The root group is ``0``; its children are ``0.0``, ``0.1``, …; a nested
group's children ``0.1.0``, …. A node's fields are named ``<id>.<name>``:

- group: ``type`` ("group") and ``op`` ("and" | "or");
- condition: ``field``, ``operator``, ``prev`` (the field it was rendered with, so a changed
  field resets the operator and value), ``value`` (text; a comma-separated list for
  in / not_in; for choice lists one ``value`` per ticked box), and for recent activity
  ``kind``, ``days`` and ``min_count``.

Buttons post ``action``: ``add:<group id>`` (a condition), ``group:<group id>`` (a nested
group), ``remove:<node id>``. Ids are renumbered after every action, so they stay short.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from django.http import QueryDict

from marketing.analytics.rules import (
    ACTIVITY_KINDS,
    FIELDS,
    MAX_CONDITIONS,
    MAX_DEPTH,
    OPERATORS,
)
from marketing.models import EventKind

ROOT = "0"
_ID = re.compile(rf"^0(\.\d{{1,3}}){{0,{MAX_DEPTH + 1}}}$")
MAX_NODES = 2 * MAX_CONDITIONS + 20
LIST_OPERATORS = ("in", "not_in")
GROUP_LABELS = {"profile": "Profile", "customer": "Customer", "behaviour": "Behaviour"}
DEFAULT_OPERATOR = {"number": "gte", "choice": "eq", "text": "eq", "bool": "is_true",
                    "category": "eq", "activity": "gte"}  # fmt: skip
OPERATOR_LABELS = {
    "number": {"eq": "equals", "ne": "does not equal", "lt": "is less than", "lte": "is at most",
               "gt": "is more than", "gte": "is at least", "in": "is one of",
               "not_in": "is none of"},
    "choice": {"eq": "is", "ne": "is not", "in": "is one of", "not_in": "is none of"},
    "text": {"eq": "is", "ne": "is not", "in": "is one of", "not_in": "is none of",
             "contains": "contains"},
    "bool": {"is_true": "is given", "is_false": "is not given"},
    "category": {"eq": "is", "ne": "is not (never bought)", "in": "is one of",
                 "not_in": "is none of (never bought)", "contains": "contains"},
    "activity": {"gte": "at least", "lt": "fewer than"},
}  # fmt: skip
DEFAULT_ACTIVITY = {"kind": "any", "days": "30", "min_count": "1"}


def _new_condition() -> Node:
    return Node(kind="condition", field="recency_days", operator="lte", value="30")


@dataclass
class Node:
    kind: str  # "group" | "condition"
    id: str = ROOT
    op: str = "and"
    children: list[Node] = dataclasses.field(default_factory=list)
    field: str = ""
    operator: str = ""
    value: str = ""  # text, number, category; comma-separated for lists
    values: list[str] = dataclasses.field(
        default_factory=list
    )  # ticked choices (choice in / not_in)
    activity: dict[str, str] = dataclasses.field(default_factory=lambda: dict(DEFAULT_ACTIVITY))

    @property
    def is_group(self) -> bool:
        return self.kind == "group"


@dataclass
class Problem:
    node_id: str
    text: str


@dataclass
class Builder:
    name: str = ""
    description: str = ""
    root: Node = dataclasses.field(default_factory=lambda: Node(kind="group"))

    # ------------------------------------------------------------------ in

    @classmethod
    def new(cls) -> Builder:
        builder = cls(root=Node(kind="group", children=[_new_condition()]))
        builder.renumber()
        return builder

    @classmethod
    def from_rule(cls, *, name: str, description: str, rule: dict | None) -> Builder:
        """The builder for a stored (normalised) rule."""
        builder = cls(name=name, description=description, root=_node_from_rule(rule or {}))
        if not builder.root.is_group:
            builder.root = Node(kind="group", children=[builder.root])
        builder.renumber()
        return builder

    @classmethod
    def from_post(cls, data: QueryDict, *, reset_changed: bool = False) -> Builder:
        """The builder the form posted. ``reset_changed``: a condition whose field changed
        since it was rendered starts with an empty value (the builder re-renders after a
        field change; a save without JavaScript keeps what was typed)."""
        nodes: dict[str, Node] = {}
        root = Node(kind="group", op=_op(data.get(f"{ROOT}.op")))
        nodes[ROOT] = root
        for node_id in data.getlist("node")[:MAX_NODES]:
            if node_id == ROOT or node_id in nodes or not _ID.match(node_id):
                continue
            parent = nodes.get(node_id.rsplit(".", 1)[0])
            if parent is None or not parent.is_group:
                continue  # an orphan (its group was not posted): dropped
            if data.get(f"{node_id}.type") == "group":
                node = Node(kind="group", op=_op(data.get(f"{node_id}.op")))
            else:
                node = _condition_from_post(data, node_id, reset_changed=reset_changed)
            nodes[node_id] = node
            parent.children.append(node)
        builder = cls(name=data.get("name", ""), description=data.get("description", ""), root=root)
        builder.renumber()
        return builder

    # ------------------------------------------------------------------ edits

    def apply(self, action: str) -> None:
        """Add a condition or group to a group, or remove a node; unknown actions do nothing."""
        verb, _, node_id = (action or "").partition(":")
        nodes = dict(self.walk())
        target = nodes.get(node_id)
        if target is None:
            return
        if verb == "add" and target.is_group and self.condition_count() < MAX_CONDITIONS:
            target.children.append(_new_condition())
        elif verb == "group" and target.is_group and _depth(node_id) < MAX_DEPTH:
            if self.condition_count() < MAX_CONDITIONS:
                op = "or" if target.op == "and" else "and"
                target.children.append(Node(kind="group", op=op, children=[_new_condition()]))
        elif verb == "remove" and node_id != ROOT:
            parent = nodes[node_id.rsplit(".", 1)[0]]
            parent.children = [c for c in parent.children if c is not target]
        self.renumber()

    def renumber(self) -> None:
        def visit(node: Node, node_id: str) -> None:
            node.id = node_id
            for i, child in enumerate(node.children):
                visit(child, f"{node_id}.{i}")

        visit(self.root, ROOT)

    def walk(self):
        """(id, node) in document order."""
        stack = [self.root]
        while stack:
            node = stack.pop()
            yield node.id, node
            stack.extend(reversed(node.children))

    def condition_count(self) -> int:
        return sum(1 for _, node in self.walk() if not node.is_group)

    # ------------------------------------------------------------------ out

    def rule(self) -> dict:
        """The tree for `normalise_rule`, child order as on the page (so error paths match)."""
        return _rule_of(self.root)

    def paths(self) -> dict[str, str]:
        """normalise_rule's path of each node ("rule", "rules[1].rules[0]") → node id."""
        out = {"rule": ROOT}

        def visit(node: Node, path: str) -> None:
            for i, child in enumerate(node.children):
                child_path = f"rules[{i}]" if path == "rule" else f"{path}.rules[{i}]"
                out[child_path] = child.id
                visit(child, child_path)

        visit(self.root, "rule")
        return out

    def problems(self, errors: list[tuple[str, str]]) -> list[Problem]:
        """Each (path, reason) as "Condition 2: churn probability is a share …"."""
        paths = self.paths()
        labels = self.labels()
        out = []
        for path, reason in errors:
            node_id = ROOT
            trimmed = path
            while trimmed:
                if trimmed in paths:
                    node_id = paths[trimmed]
                    break
                trimmed = trimmed.rpartition(".")[0]
            out.append(Problem(node_id, f"{labels.get(node_id, 'Rule')}: {humanise(reason)}"))
        return out

    def labels(self) -> dict[str, str]:
        """ "Condition N" / "Group N" by document order; the root group is "Rule"."""
        labels, conditions, groups = {}, 0, 0
        for node_id, node in self.walk():
            if node_id == ROOT:
                labels[node_id] = "Rule"
            elif node.is_group:
                groups += 1
                labels[node_id] = f"Group {groups}"
            else:
                conditions += 1
                labels[node_id] = f"Condition {conditions}"
        return labels

    def view(self, problems: list[Problem] | None = None) -> dict:
        """The root group as nested dicts for `_segment_rule_node.html`."""
        by_node: dict[str, list[str]] = {}
        for problem in problems or []:
            by_node.setdefault(problem.node_id, []).append(problem.text)
        labels = self.labels()
        full = self.condition_count() >= MAX_CONDITIONS

        def visit(node: Node, depth: int) -> dict:
            base = {
                "id": node.id,
                "dom_id": "rule-node-" + node.id.replace(".", "-"),
                "label": labels.get(node.id, ""),
                "errors": by_node.get(node.id, []),
            }
            if node.is_group:
                return {
                    **base,
                    "is_group": True,
                    "is_root": node.id == ROOT,
                    "op": node.op,
                    "depth": depth,
                    "can_add": not full,
                    "can_nest": depth < MAX_DEPTH and not full,
                    "children": [visit(c, depth + 1) for c in node.children],
                }
            return {**base, "is_group": False, **_condition_view(node)}

        return visit(self.root, 1)


# --------------------------------------------------------------------------- helpers


def _op(raw: str | None) -> str:
    return "or" if (raw or "").strip().lower() == "or" else "and"


def _depth(node_id: str) -> int:
    """Group depth of a group id: the root is 1."""
    return node_id.count(".") + 1


def _condition_from_post(data: QueryDict, node_id: str, *, reset_changed: bool) -> Node:
    name = (data.get(f"{node_id}.field") or "").strip()
    spec = FIELDS.get(name)
    node = Node(kind="condition", field=name, operator=(data.get(f"{node_id}.operator") or ""))
    if spec is None:
        return node
    if node.operator not in OPERATORS[spec.type]:
        node.operator = DEFAULT_OPERATOR[spec.type]
    prev = FIELDS.get((data.get(f"{node_id}.prev") or "").strip())
    if reset_changed and prev is not None and prev.name != spec.name:
        # A new field starts with an empty value (30 days is no churn probability).
        if spec.type == "choice":
            node.value = spec.choices[0]
        return node
    if spec.type == "choice":
        if node.operator in LIST_OPERATORS:
            node.values = [v for v in data.getlist(f"{node_id}.value") if v in spec.choices]
        else:
            value = data.get(f"{node_id}.value", "")
            node.value = value if value in spec.choices else spec.choices[0]
    elif spec.type == "activity":
        kind = (data.get(f"{node_id}.kind") or "any").strip()
        node.activity = {
            "kind": kind if kind in ACTIVITY_KINDS else "any",
            "days": (data.get(f"{node_id}.days") or "").strip(),
            "min_count": (data.get(f"{node_id}.min_count") or "").strip() or "1",
        }
    elif spec.type != "bool":
        node.value = (data.get(f"{node_id}.value") or "").strip()
    return node


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _rule_of(node: Node) -> dict:
    if node.is_group:
        return {"op": node.op, "rules": [_rule_of(c) for c in node.children]}
    spec = FIELDS.get(node.field)
    condition: dict[str, Any] = {"field": node.field, "operator": node.operator}
    if spec is None or spec.type == "bool":
        return condition
    if spec.type == "activity":
        condition["value"] = dict(node.activity)
    elif spec.type == "choice" and node.operator in LIST_OPERATORS:
        condition["value"] = list(node.values)
    elif node.operator in LIST_OPERATORS:
        condition["value"] = _split(node.value)
    else:
        condition["value"] = node.value
    return condition


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return "" if value is None else str(value)


def _node_from_rule(rule: dict) -> Node:
    if "rules" in rule or "op" in rule or not rule:
        return Node(
            kind="group",
            op=_op(rule.get("op")),
            children=[_node_from_rule(c) for c in rule.get("rules", [])],
        )
    spec = FIELDS.get(rule.get("field", ""))
    node = Node(kind="condition", field=rule.get("field", ""), operator=rule.get("operator", ""))
    value = rule.get("value")
    if spec is None or spec.type == "bool":
        return node
    if spec.type == "activity" and isinstance(value, dict):
        node.activity = {k: _text(value.get(k, DEFAULT_ACTIVITY[k])) for k in DEFAULT_ACTIVITY}
    elif spec.type == "choice" and isinstance(value, list):
        node.values = [_text(v) for v in value]
    elif isinstance(value, list):
        node.value = ", ".join(_text(v) for v in value)
    else:
        node.value = _text(value)
    return node


def field_groups() -> list[tuple[str, list[tuple[str, str]]]]:
    """The field select's optgroups: [(group label, [(name, label), …]), …]."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for spec in FIELDS.values():
        groups.setdefault(GROUP_LABELS.get(spec.group, spec.group), []).append(
            (spec.name, spec.label)
        )
    return list(groups.items())


ACTIVITY_KIND_LABELS = [("any", "any")] + [
    (k, str(EventKind(k).label).lower()) for k in ACTIVITY_KINDS if k != "any"
]


def _condition_view(node: Node) -> dict:
    spec = FIELDS.get(node.field)
    if spec is None:
        return {"field": node.field, "type": "unknown", "operators": [], "value": node.value}
    labels = OPERATOR_LABELS[spec.type]
    view = {
        "field": spec.name,
        "field_label": spec.label,
        "type": spec.type,
        "operator": node.operator,
        "operators": [(op, labels[op]) for op in OPERATORS[spec.type]],
        "is_list": node.operator in LIST_OPERATORS,
        "value": node.value,
        "share": spec.share,
        "integer": spec.integer,
    }
    if spec.type == "choice":
        view["choices"] = [
            (c, c or "(unknown)", c in node.values if view["is_list"] else c == node.value)
            for c in spec.choices
        ]
    if spec.type == "activity":
        view["activity"] = node.activity
        view["kinds"] = ACTIVITY_KIND_LABELS
    return view


def _field_label(name: str) -> str:
    label = FIELDS[name].label
    # "Churn probability" → "churn probability", but "RFM segment" and "SMS consent" stay.
    return label if label[1:2].isupper() else label[:1].lower() + label[1:]


_FIELD_NAMES = re.compile(r"\b(" + "|".join(sorted(FIELDS, key=len, reverse=True)) + r")\b")
_REWRITES = [
    (re.compile(r"^value for (.+?) must be a number, got ''$"), r"\1: enter a number"),
    (re.compile(r"^value for (.+?) (?:in|not_in) must not be an empty list$"),
     r"\1: give at least one value"),
    (re.compile(r"^value for (.+?) contains must not be empty$"), r"\1: enter the text to look for"),
    (re.compile(r"^category must not be empty$"), "enter a category"),
    (re.compile(r"^days must be (.*)$"), r"the number of days must be \1"),
    (re.compile(r"^min_count must be (.*)$"), r"the number of events must be \1"),
    (re.compile(r"^value for (.+?) must be (.*)$"), r"\1 must be \2"),
]  # fmt: skip


def humanise(reason: str) -> str:
    """normalise_rule's reason in the builder's words (field labels instead of names)."""
    for pattern, replacement in _REWRITES:
        if pattern.match(reason):
            reason = pattern.sub(replacement, reason)
            break
    return _FIELD_NAMES.sub(lambda m: _field_label(m.group(1)), reason)
