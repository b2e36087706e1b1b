"""Template grammars, one module per locale (en, de, fr, es, zh).

Each module defines ``SEP`` (between sentences), ``QUOTES`` (open, close), ``FRAMES``
({slot: {tone or "*": [frame, …]}}; "*" frames suit every tone and are added to the
tone's own), ``ATTR`` ({attribute family: [frame, …]}, placeholders {value} and {label})
and ``LIST_AND`` (the word joining the last two items of a list). Placeholders: {first}
{sender} {name} {price} {category} {brand} {point} {quote} {rating} {count} {stock}
{occasion} {date}. A frame is only used when every placeholder it names has a value.
"""

from importlib import import_module
from types import ModuleType

from copygen.engine.types import LOCALES


def load(locale: str) -> ModuleType:
    code = (locale or "en").split("_")[0].split("-")[0].lower()
    if code not in LOCALES:
        code = "en"
    return import_module(f"{__name__}.{code}")
