"""Every environment variable the code reads is in the README's table, and `.env.example` agrees
with it, so the operator's reference cannot drift from the code.

The names come from the code, not from a list kept by hand: an AST walk over every Python
file of the project (tests and benchmarks aside) finds the calls that read the environment —
`marketing.env`'s typed readers, `os.environ.get` / `[...]` / `setdefault`, `os.getenv` —
with their names. A reader called with a computed name (api/conf.py loops over a dict) counts
every upper-case string constant of its module as a name it may read.
"""

from __future__ import annotations

import ast
import functools
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("marketing", "recommendations", "copygen", "api", "scripts", "manage.py")
READERS = {"env_str", "env_int", "env_bool", "env_list", "env_path", "getenv"}
ENVIRON_METHODS = {"get", "setdefault", "pop", "__getitem__"}
NAME = re.compile(r"[A-Z][A-Z0-9_]{2,}")
# Read by the libraries we run, documented because operators set them.
READ_BY_LIBRARIES = {"CELERY_SKIP_CHECKS"}
# Read by the test suite only; .env.example lists them for developers.
TEST_ONLY = {"PLAYWRIGHT_CHROMIUM"}


def _is_environ(node: ast.AST) -> bool:
    """`os.environ` or a bare `environ`."""
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ"
    )


def _literal(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def env_reads(tree: ast.AST) -> tuple[set[str], int]:
    """Names read from the environment in a module, and how many reads had a computed name."""
    names: set[str] = set()
    computed = 0
    for node in ast.walk(tree):
        name_node: ast.AST | None = None
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called in READERS or (
                isinstance(func, ast.Attribute)
                and func.attr in ENVIRON_METHODS
                and _is_environ(func.value)
            ):
                name_node = node.args[0] if node.args else None
            else:
                continue
        elif isinstance(node, ast.Subscript) and _is_environ(node.value):
            name_node = node.slice
        else:
            continue
        name = _literal(name_node)
        if name is not None:
            names.add(name)
        else:
            computed += 1
    return names, computed


def _module_constants(tree: ast.AST) -> set[str]:
    return {
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and NAME.fullmatch(n.value)
    }


def code_env_names() -> dict[str, set[Path]]:
    """Every variable the code reads → the files that read it."""
    return _scan(ROOT, SOURCES)


@functools.cache
def _scan(root: Path, sources: tuple[str, ...]) -> dict[str, set[Path]]:
    files: list[Path] = []
    for source in sources:
        path = root / source
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    found: dict[str, set[Path]] = {}
    for path in files:
        if "migrations" in path.parts or path == root / "marketing" / "env.py":
            continue  # env.py holds the readers themselves: their callers name the variables
        tree = ast.parse(path.read_text(), filename=str(path))
        names, computed = env_reads(tree)
        if computed:
            constants = _module_constants(tree)
            assert constants, f"{path}: reads the environment with a name that cannot be found"
            names |= constants
        for name in names:
            found.setdefault(name, set()).add(path.relative_to(root))
    return found


def readme_table_names() -> dict[str, str]:
    """The first column of the README's environment table → the row's default column."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Environment variables", 1)
    assert len(section) == 2, "README.md has no '### Environment variables' section"
    rows: dict[str, str] = {}
    for line in section[1].splitlines():
        if line.startswith("#"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and (m := re.fullmatch(r"`([A-Z][A-Z0-9_]+)`", cells[0])):
            rows[m.group(1)] = cells[1]
    return rows


def env_example() -> dict[str, tuple[bool, str]]:
    """`.env.example`'s variables → (commented out, value)."""
    found = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if m := re.match(r"(#?)\s*([A-Z][A-Z0-9_]+)=(\S*)", line):
            found[m.group(2)] = (bool(m.group(1)), m.group(3))
    return found


def env_example_names() -> set[str]:
    return set(env_example())


# --------------------------------------------------------------------------------- tests


def test_every_variable_the_code_reads_is_in_the_readme_table():
    documented = readme_table_names()
    read = code_env_names()
    assert len(read) > 40  # the walk found the settings (a broken walk finds nothing)
    missing = {
        name: sorted(map(str, files)) for name, files in read.items() if name not in documented
    }
    assert not missing, f"add these to README.md's environment table: {missing}"


def test_the_readme_table_lists_nothing_the_code_does_not_read():
    stale = set(readme_table_names()) - set(code_env_names()) - READ_BY_LIBRARIES - TEST_ONLY
    assert not stale, f"README.md's environment table lists variables nothing reads: {stale}"


def test_env_example_and_the_readme_table_agree():
    documented = set(readme_table_names())
    example = env_example_names()
    assert not example - documented, f".env.example has {example - documented}, the README not"
    operator = documented - {"DJANGO_SETTINGS_MODULE"}  # set by the code itself
    assert not operator - example, f"README has {operator - example}, .env.example not"


def test_env_example_gives_the_tables_defaults():
    """Where the table's default is one literal value, `.env.example` sets exactly that."""
    example = env_example()
    differ = {}
    for name, default in readme_table_names().items():
        literal = re.fullmatch(r"`([^`]*)`(?: \([^)]*\))?", default)
        if literal is None or name not in example or example[name][0]:
            continue  # a default in words, or one that depends on other settings
        expected = literal.group(1).replace("DATA_DIR/", "./data/")
        if example[name][1] != expected:
            differ[name] = (expected, example[name][1])
    assert not differ, f"README default vs .env.example: {differ}"


SAMPLE = """
import os
from marketing.env import env_bool, env_int

A = env_bool("FROM_HELPER", False)
B = os.environ.get("FROM_GET", "x")
C = os.environ["FROM_SUBSCRIPT"]
D = os.getenv("FROM_GETENV")
os.environ.setdefault("FROM_SETDEFAULT", "1")
"""

COMPUTED = """
from marketing.env import env_int
_DEFAULTS = {"SOME_LIMIT": 1, "OTHER_LIMIT": 2}
VALUES = {name: env_int(name, d) for name, d in _DEFAULTS.items()}
"""


def test_the_walk_finds_every_way_of_reading_and_flags_computed_names():
    names, computed = env_reads(ast.parse(SAMPLE))
    assert names == {
        "FROM_HELPER",
        "FROM_GET",
        "FROM_SUBSCRIPT",
        "FROM_GETENV",
        "FROM_SETDEFAULT",
    }
    assert computed == 0
    tree = ast.parse(COMPUTED)
    names, computed = env_reads(tree)
    assert (names, computed) == (set(), 1)
    assert {"SOME_LIMIT", "OTHER_LIMIT"} <= _module_constants(tree)


def test_an_undocumented_variable_fails(tmp_path, monkeypatch):
    """The check can fail: a new setting the README does not list is reported."""
    (tmp_path / "marketing").mkdir()
    (tmp_path / "marketing" / "settings.py").write_text(
        SAMPLE + '\nE = env_int("TAILOR_BRAND_NEW_KNOB", 3)\n'
    )
    (tmp_path / "README.md").write_text(
        "### Environment variables\n\n| name | default | meaning |\n| --- | --- | --- |\n"
        + "".join(
            f"| `{n}` | – | x |\n"
            for n in ("FROM_HELPER", "FROM_GET", "FROM_SUBSCRIPT", "FROM_GETENV", "FROM_SETDEFAULT")
        )
    )
    module = sys.modules[__name__]
    monkeypatch.setattr(module, "ROOT", tmp_path)
    monkeypatch.setattr(module, "SOURCES", ("marketing",))
    assert set(code_env_names()) - set(readme_table_names()) == {"TAILOR_BRAND_NEW_KNOB"}


@pytest.mark.parametrize("name", ["DATABASE_URL", "API_RATE_READ_PER_MIN", "DEMO_PASSWORD", "PORT"])
def test_known_variables_are_found(name):
    """Spot checks across the kinds of reads: settings, api/conf.py's loop, a command, run.py."""
    assert name in code_env_names()
