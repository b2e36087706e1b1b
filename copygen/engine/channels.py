"""Channels: their fields and limits, grapheme counting and SMS segments.

Lengths are counted in graphemes (user-perceived characters, Unicode extended grapheme
clusters), never in bytes or code points: "👩‍👩‍👧" is one, a decomposed "é" is one, a
flag is one. Google Ads counts a double-width (CJK) character as two, so its fields say
``count="google"``.

SMS are counted in segments: GSM-7 holds 160 septets in one segment and 153 per part of
a longer message (the user data header takes the rest); the GSM-7 extension characters
(``^{}\\[~]|€`` and form feed) take two septets each. One character outside GSM-7 (an
emoji, a Chinese character, "ą") switches the whole message to UCS-2: 70 UTF-16 code
units in one segment, 67 per part.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import asdict, dataclass
from functools import lru_cache

# --- fields -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    """One field of a channel. ``kind``: text | list | sms. For text and each list item,
    ``min_len``/``max_len`` are graphemes (``count="google"``: double-width counts 2); for
    a list, ``min_items``/``max_items`` bound the number of items. ``prose`` fields are
    sentences (readability is measured on them); ``disclaimer`` fields have room for the
    brand's required disclaimer; ``multiline`` fields may hold paragraphs."""

    name: str
    label: str
    required: bool = True
    kind: str = "text"
    min_len: int = 0
    max_len: int | None = None
    min_items: int = 0
    max_items: int | None = None
    count: str = "graphemes"
    prose: bool = False
    multiline: bool = False
    disclaimer: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


EMAIL_BODY_MAX = 2000
PRODUCT_SHORT_MAX = 160
PRODUCT_LONG_MAX = 3000

FIELDS: dict[str, tuple[FieldSpec, ...]] = {
    "email": (
        FieldSpec("subject", "Subject line", max_len=60),
        FieldSpec("preheader", "Preheader", min_len=40, max_len=110),
        FieldSpec(
            "body", "Body", max_len=EMAIL_BODY_MAX, prose=True, multiline=True, disclaimer=True
        ),
        FieldSpec("cta", "Call to action", max_len=25),
    ),
    "sms": (FieldSpec("text", "Text message", kind="sms", prose=True),),
    "push": (
        FieldSpec("title", "Title", max_len=40),
        FieldSpec("body", "Body", max_len=120, prose=True),
    ),
    "google_ads": (
        FieldSpec(
            "headlines",
            "Headlines",
            kind="list",
            max_len=30,
            min_items=3,
            max_items=15,
            count="google",
        ),
        FieldSpec(
            "descriptions",
            "Descriptions",
            kind="list",
            max_len=90,
            min_items=2,
            max_items=4,
            count="google",
        ),
    ),
    "meta_ads": (
        FieldSpec("primary_text", "Primary text", max_len=125, prose=True),
        FieldSpec("headline", "Headline", max_len=40),
        FieldSpec("description", "Description", required=False, max_len=30),
    ),
    "product_text": (
        FieldSpec("short", "Short description", max_len=PRODUCT_SHORT_MAX, prose=True),
        FieldSpec(
            "long",
            "Long description",
            max_len=PRODUCT_LONG_MAX,
            prose=True,
            multiline=True,
            disclaimer=True,
        ),
    ),
}


def channel_fields(channel: str) -> tuple[FieldSpec, ...]:
    """The fields of ``channel``; KeyError for an unknown channel."""
    return FIELDS[channel]


def field_spec(channel: str, name: str) -> FieldSpec | None:
    for spec in FIELDS.get(channel, ()):
        if spec.name == name:
            return spec
    return None


def fields_as_dict() -> dict[str, list[dict]]:
    """FIELDS as plain data for the UI (JSON-serializable)."""
    return {channel: [s.to_dict() for s in specs] for channel, specs in FIELDS.items()}


def measure(text: str, spec: FieldSpec | None = None) -> int:
    """Length of ``text`` as the field's limit counts it (graphemes, or Google's count)."""
    if spec is not None and spec.count == "google":
        return google_length(text)
    return grapheme_len(text)


# --- graphemes ----------------------------------------------------------------------------
# A compact version of UAX #29 (extended grapheme clusters): GB3-GB13 and GB999, with
# Extended_Pictographic approximated by the emoji blocks and GB9c (Indic conjuncts) by
# "virama + letter". Python's unicodedata has no Grapheme_Cluster_Break property, so the
# classes come from the general category plus a few ranges.

_OTHER, _CR, _LF, _CONTROL, _EXTEND, _ZWJ, _RI, _SPACING, _L, _V, _T, _LV, _LVT, _PICT = range(14)

_PICT_RANGES = (
    (0x00A9, 0x00A9),
    (0x00AE, 0x00AE),
    (0x203C, 0x203C),
    (0x2049, 0x2049),
    (0x2122, 0x2122),
    (0x2139, 0x2139),
    (0x2194, 0x21AA),
    (0x231A, 0x23FF),
    (0x24C2, 0x24C2),
    (0x25AA, 0x25FE),
    (0x2600, 0x27BF),
    (0x2934, 0x2935),
    (0x2B05, 0x2B55),
    (0x3030, 0x3030),
    (0x303D, 0x303D),
    (0x3297, 0x3299),
    (0x1F000, 0x1F0FF),
    (0x1F10D, 0x1F10F),
    (0x1F12F, 0x1F12F),
    (0x1F16C, 0x1F171),
    (0x1F17E, 0x1F17F),
    (0x1F18E, 0x1F18E),
    (0x1F191, 0x1F19A),
    (0x1F1AD, 0x1F1E5),
    (0x1F201, 0x1F2FF),
    (0x1F300, 0x1F3FA),
    (0x1F400, 0x1FAFF),
    (0x1FC00, 0x1FFFD),
)
_VIRAMAS = frozenset({0x094D, 0x09CD, 0x0ACD, 0x0B4D, 0x0C4D, 0x0D4D})


def _gcb(ch: str) -> int:
    cp = ord(ch)
    if cp < 0x7F:
        if cp == 0x0D:
            return _CR
        if cp == 0x0A:
            return _LF
        return _CONTROL if cp < 0x20 else _OTHER
    if cp == 0x200D:
        return _ZWJ
    if 0x1F1E6 <= cp <= 0x1F1FF:
        return _RI
    if 0x1F3FB <= cp <= 0x1F3FF or 0xE0020 <= cp <= 0xE007F or cp == 0x200C:
        return _EXTEND  # emoji modifiers, tags, ZWNJ
    if 0x1100 <= cp <= 0x115F or 0xA960 <= cp <= 0xA97C:
        return _L
    if 0x1160 <= cp <= 0x11A7 or 0xD7B0 <= cp <= 0xD7C6:
        return _V
    if 0x11A8 <= cp <= 0x11FF or 0xD7CB <= cp <= 0xD7FB:
        return _T
    if 0xAC00 <= cp <= 0xD7A3:
        return _LV if (cp - 0xAC00) % 28 == 0 else _LVT
    for lo, hi in _PICT_RANGES:
        if lo <= cp <= hi:
            return _PICT
    cat = unicodedata.category(ch)
    if cat in ("Mn", "Me"):
        return _EXTEND
    if cat == "Mc":
        return _SPACING
    if cat in ("Cc", "Zl", "Zp") or (cat == "Cf" and cp not in (0x200C, 0x200D)):
        return _CONTROL
    return _OTHER


# Characters that never join a neighbour into one cluster (Latin, general punctuation,
# currency symbols, CJK ideographs and punctuation, fullwidth forms): a text made only of
# these has one grapheme per code point (but for CR LF).
_SIMPLE_RE = re.compile(
    "[^\x00-\u02ff\u2010-\u2027\u2030-\u205e\u20a0-\u20cf\u3000-\u3029\u3031-\u303f"
    "\u4e00-\u9fff\uff01-\uff60]"
)


def _simple(text: str) -> bool:
    return "\r\n" not in text and (text.isascii() or _SIMPLE_RE.search(text) is None)


def graphemes(text: str) -> list[str]:
    """Split ``text`` into extended grapheme clusters."""
    if not text:
        return []
    if _simple(text):
        return list(text)
    clusters: list[str] = []
    start = 0
    prev = _gcb(text[0])
    prev_cp = ord(text[0])
    pict = 1 if prev == _PICT else 0  # 1: after ExtPict Extend*; 2: after ExtPict Extend* ZWJ
    ri_run = 1 if prev == _RI else 0
    for i in range(1, len(text)):
        ch = text[i]
        cur = _gcb(ch)
        if prev == _CR and cur == _LF:
            brk = False  # GB3
        elif prev in (_CONTROL, _CR, _LF) or cur in (_CONTROL, _CR, _LF):
            brk = True  # GB4, GB5
        else:
            brk = not (
                (prev == _L and cur in (_L, _V, _LV, _LVT))  # GB6
                or (prev in (_LV, _V) and cur in (_V, _T))  # GB7
                or (prev in (_LVT, _T) and cur == _T)  # GB8
                or cur in (_EXTEND, _ZWJ, _SPACING)  # GB9, GB9a
                or (prev == _ZWJ and cur == _PICT and pict == 2)  # GB11
                or (prev == _RI and cur == _RI and ri_run % 2 == 1)  # GB12, GB13
                or (prev_cp in _VIRAMAS and unicodedata.category(ch) == "Lo")  # ~GB9c
            )
        if brk:
            clusters.append(text[start:i])
            start = i
        # state for GB11 and GB12/13
        if cur == _PICT or (cur == _EXTEND and pict == 1):
            pict = 1
        elif cur == _ZWJ and pict == 1:
            pict = 2
        else:
            pict = 0
        ri_run = ri_run + 1 if cur == _RI else 0
        prev, prev_cp = cur, ord(ch)
    clusters.append(text[start:])
    return clusters


def grapheme_len(text: str) -> int:
    """Number of user-perceived characters in ``text``."""
    if not text:
        return 0
    if text.isascii():
        return len(text) - text.count("\r\n")
    if _simple(text):
        return len(text)
    return len(graphemes(text))


@lru_cache(maxsize=8192)
def _google_width(ch: str) -> int:
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") and _gcb(ch) != _PICT else 1


def google_length(text: str) -> int:
    """Google Ads' count: graphemes, a double-width (East Asian wide/fullwidth) one as 2."""
    if text.isascii():
        return grapheme_len(text)
    return sum(_google_width(g[0]) for g in graphemes(text))


# --- SMS ----------------------------------------------------------------------------------

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
GSM7 = "GSM-7"
UCS2 = "UCS-2"
SMS_LIMITS = {GSM7: (160, 153), UCS2: (70, 67)}  # (single segment, per part)


def sms_encoding(text: str) -> str:
    """GSM-7 when every character is in the GSM 03.38 basic or extension table, else UCS-2."""
    for ch in text:
        if ch not in GSM7_BASIC and ch not in GSM7_EXTENSION:
            return UCS2
    return GSM7


def non_gsm_chars(text: str) -> list[str]:
    """The graphemes that force UCS-2 (for a helpful message), in order, unique."""
    seen: list[str] = []
    for g in graphemes(text):
        if any(ch not in GSM7_BASIC and ch not in GSM7_EXTENSION for ch in g) and g not in seen:
            seen.append(g)
    return seen


def _units(text: str, encoding: str) -> list[int]:
    if encoding == GSM7:
        return [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def sms_segments(text: str) -> tuple[str, int, int]:
    """``(encoding, segments, units)``: units are septets (GSM-7) or UTF-16 code units
    (UCS-2). A multipart message never splits an escape sequence or a surrogate pair, so
    parts are packed greedily. An empty text is 0 segments."""
    encoding = sms_encoding(text)
    units = _units(text, encoding)
    total = sum(units)
    if total == 0:
        return encoding, 0, 0
    single, part = SMS_LIMITS[encoding]
    if total <= single:
        return encoding, 1, total
    segments, used = 1, 0
    for u in units:
        if used + u > part:
            segments += 1
            used = 0
        used += u
    return encoding, max(segments, math.ceil(total / part)), total
