"""Checks on one variant, generated or edited: limits, required fields, placeholders,
markup, banned and spam words, capitals, exclamation marks, readability, language,
disclaimer and fidelity.

Every ``check_*`` function returns a list of CheckResult: the failures, or one passing
result named after the check. A failure with severity "error" blocks approval; a
"warning" is shown but does not. ``check_variant`` runs them all.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any

from babel.numbers import get_currency_symbol

from copygen.engine.channels import (
    FIELDS,
    GSM7,
    FieldSpec,
    field_spec,
    measure,
    non_gsm_chars,
    sms_segments,
)
from copygen.engine.facts import (
    NUMBER_RE,
    PERCENT_RE,
    format_price,
    number_candidates,
    number_values,
    numbers_in,
    percents_in,
)
from copygen.engine.types import LOCALES, Brief, CheckResult, FactSheet, Recipient, Variant

ERROR = "error"
WARNING = "warning"

CHECKS = (
    "required",
    "limits",
    "placeholders",
    "markup",
    "banned_words",
    "spam",
    "capitals",
    "exclamations",
    "readability",
    "language",
    "disclaimer",
    "fidelity",
)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


CHECK_LABELS = {
    "required": "Required fields",
    "limits": "Length limits",
    "placeholders": "No leftover placeholders",
    "markup": "Plain text (no HTML)",
    "banned_words": "Banned words",
    "spam": "Spam triggers",
    "capitals": "Capitals",
    "exclamations": "Exclamation marks",
    "readability": "Readability",
    "language": "Language",
    "disclaimer": "Disclaimer",
    "fidelity": "Faithful to product data",
}


def _ok(check: str, failures: list[CheckResult], **details: Any) -> list[CheckResult]:
    return failures or [CheckResult(check=check, ok=True, details=details)]


def _fail(check: str, message: str, *, field: str = "", severity: str = ERROR, **details: Any):
    return CheckResult(
        check=check, ok=False, message=message, field=field, severity=severity, details=details
    )


def is_blocking(results: Iterable[CheckResult]) -> bool:
    """True when any result is a failed error (the variant cannot be approved)."""
    return any(not r.ok and r.severity == ERROR for r in results)


def failed_checks(results: Iterable[CheckResult]) -> list[str]:
    """Names of the checks that failed (errors and warnings), in order, unique."""
    out: list[str] = []
    for r in results:
        if not r.ok and r.check not in out:
            out.append(r.check)
    return out


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


# the texts of the variants ``check_variant`` is checking (id -> texts), so its dozen checks
# split the fields once
_TEXTS: dict[int, list[tuple[str, str, FieldSpec | None]]] = {}


def iter_texts(variant: Variant) -> list[tuple[str, str, FieldSpec | None]]:
    """``(field, text, spec)`` for every text of the variant; list items are
    ``headlines[0]``, ``headlines[1]``…; fields the channel does not know have no spec."""
    hit = _TEXTS.get(id(variant))
    if hit is not None:
        return hit
    out: list[tuple[str, str, FieldSpec | None]] = []
    for name, value in (variant.fields or {}).items():
        spec = field_spec(variant.channel, name)
        if isinstance(value, (list, tuple)):
            out.extend((f"{name}[{i}]", _as_text(v), spec) for i, v in enumerate(value))
        else:
            out.append((name, _as_text(value), spec))
    return out


# --- required fields, limits --------------------------------------------------------------


def check_required(variant: Variant) -> list[CheckResult]:
    """Every required field present and not blank; list fields within their item counts;
    no fields the channel does not have."""
    if variant.channel not in FIELDS:
        return [_fail("required", f"Unknown channel {variant.channel!r}.")]
    fields = variant.fields or {}
    failures: list[CheckResult] = []
    for spec in FIELDS[variant.channel]:
        value = fields.get(spec.name)
        if spec.kind == "list":
            items = [v for v in (value or []) if _as_text(v).strip()]
            n_blank = len(value or []) - len(items)
            if n_blank:
                failures.append(
                    _fail("required", f"{spec.label}: {n_blank} empty item(s).", field=spec.name)
                )
            if len(items) < spec.min_items or (
                spec.max_items is not None and len(items) > spec.max_items
            ):
                failures.append(
                    _fail(
                        "required",
                        f"{spec.label}: {len(items)} given, {spec.min_items}–{spec.max_items} "
                        "needed.",
                        field=spec.name,
                        count=len(items),
                        min=spec.min_items,
                        max=spec.max_items,
                    )
                )
        elif spec.required and not _as_text(value).strip():
            failures.append(_fail("required", f"{spec.label} is required.", field=spec.name))
    known = {s.name for s in FIELDS[variant.channel]}
    for name in fields:
        if name not in known:
            failures.append(
                _fail(
                    "required",
                    f"{variant.channel} has no field {name!r}.",
                    field=name,
                    severity=WARNING,
                )
            )
    return _ok("required", failures)


def check_limits(variant: Variant, brief: Brief | None = None) -> list[CheckResult]:
    """Per-field length in graphemes (min and max); SMS in segments against
    ``brief.sms_segments``."""
    allowed_segments = brief.sms_segments if brief is not None else 1
    failures: list[CheckResult] = []
    for name, text, spec in iter_texts(variant):
        if spec is None or not text:
            continue
        if spec.kind == "sms":
            encoding, segments, units = sms_segments(text)
            if segments > allowed_segments:
                extra = ""
                if encoding != GSM7:
                    chars = non_gsm_chars(text)
                    extra = f" (UCS-2 because of {' '.join(chars[:5])})"
                failures.append(
                    _fail(
                        "limits",
                        f"{spec.label}: {segments} SMS segments{extra}; {allowed_segments} "
                        "allowed.",
                        field=name,
                        encoding=encoding,
                        segments=segments,
                        units=units,
                        allowed=allowed_segments,
                        non_gsm=non_gsm_chars(text) if encoding != GSM7 else [],
                    )
                )
            continue
        length = measure(text, spec)
        if spec.max_len is not None and length > spec.max_len:
            failures.append(
                _fail(
                    "limits",
                    f"{spec.label}: {length} characters; the limit is {spec.max_len}.",
                    field=name,
                    length=length,
                    max=spec.max_len,
                )
            )
        elif length < spec.min_len:
            failures.append(
                _fail(
                    "limits",
                    f"{spec.label}: {length} characters; at least {spec.min_len} needed.",
                    field=name,
                    length=length,
                    min=spec.min_len,
                )
            )
    return _ok("limits", failures)


# --- placeholders, markup -----------------------------------------------------------------

HTML_TAGS = _words(
    "a abbr address area article aside audio b base bdi bdo blockquote body br button canvas "
    "caption center cite code col colgroup data dd del details dfn dialog div dl dt em embed "
    "fieldset figcaption figure font footer form frame frameset h1 h2 h3 h4 h5 h6 head header hr "
    "html i iframe img input ins kbd label legend li link main map mark marquee meta meter nav "
    "noscript object ol optgroup option output p param picture pre progress q s samp script "
    "section select small source span strike strong style sub summary sup svg table tbody td "
    "template textarea tfoot th thead time title tr track u ul var video wbr math base"
)
_TAG_RE = re.compile(r"<\s*/?\s*([A-Za-z][A-Za-z0-9]*)\b[^<>]*>|<!--|<\s*script", re.IGNORECASE)
_SCRIPTISH_RE = re.compile(
    r"javascript\s*:|\bon[a-z]+\s*=\s*[\"']|&lt;\s*/?\s*script|data:text/html", re.IGNORECASE
)

_PLACEHOLDER_RES = tuple(
    re.compile(p)
    for p in (
        r"\{\{.*?\}\}",  # {{ x }}
        r"\{%.*?%\}",  # {% x %}
        r"\$\{[^}]*\}",  # ${x}
        r"\{[A-Za-z_][\w.\-]*\}",  # {name}
        r"\{\d*\}",  # {} {0}
        r"\[\[.*?\]\]",  # [[x]]
        r"\[[A-Z][A-Z0-9_ \-]{1,40}\]",  # [PRODUCT] [FIRST NAME]
        r"\*\|[A-Za-z0-9_]+\|\*",  # *|FNAME|*
        r"%(?:\([A-Za-z_]\w*\))?[sd](?![A-Za-z])",  # %s %d %(name)s
        r"%[A-Z][A-Z0-9_]+%",  # %FIRSTNAME%
        r"__[A-Z][A-Z0-9_]*__",  # __NAME__
        r"(?<![\w$])\$[a-z_]\w*",  # $name
        r"\b(?:TODO|TBD|XXX+)\b",  # a writer's note left in the copy
        r"(?i:lorem ipsum)",  # filler text left in the copy
    )
)
_ANGLE_RE = re.compile(r"<\s*([A-Za-z_][\w \-]{0,40}?)\s*>")
# any of the above: a text that matches none is skipped at once
_ANY_PLACEHOLDER_RE = re.compile(
    "|".join(f"(?:{rx.pattern})" for rx in (*_PLACEHOLDER_RES, _ANGLE_RE))
)


def check_placeholders(variant: Variant) -> list[CheckResult]:
    """No template slot left unfilled: {name}, {{x}}, [PRODUCT], %s, <first_name>, …"""
    failures: list[CheckResult] = []
    for name, text, _ in iter_texts(variant):
        if not _ANY_PLACEHOLDER_RE.search(text):
            continue
        found: list[str] = []
        for rx in _PLACEHOLDER_RES:
            found.extend(m.group() for m in rx.finditer(text))
        for m in _ANGLE_RE.finditer(text):
            if m.group(1).strip().lower() not in HTML_TAGS:
                found.append(m.group())
        if found:
            failures.append(
                _fail(
                    "placeholders",
                    f"Leftover placeholder {found[0]}.",
                    field=name,
                    tokens=sorted(set(found)),
                )
            )
    return _ok("placeholders", failures)


def check_markup(variant: Variant) -> list[CheckResult]:
    """Text fields are plain text: HTML tags, comments or script → error."""
    failures: list[CheckResult] = []
    for name, text, _ in iter_texts(variant):
        tokens = [
            m.group()
            for m in _TAG_RE.finditer(text)
            if m.group(1) is None or m.group(1).lower() in HTML_TAGS
        ]
        tokens += [m.group() for m in _SCRIPTISH_RE.finditer(text)]
        if tokens:
            failures.append(
                _fail(
                    "markup",
                    f"Plain text only: remove {tokens[0]}.",
                    field=name,
                    tokens=sorted(set(tokens)),
                )
            )
    return _ok("markup", failures)


# --- banned words, spam triggers ----------------------------------------------------------

_CJK_RE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]")


def _inflected(token: str) -> str:
    """A regex for ``token`` and its simple inflections (plural, -ed, -ing, -er, -est, and the
    common German/French/Spanish endings)."""
    t = token.casefold()
    if len(t) <= 2 or not t[-1].isalpha():
        return re.escape(t)
    if t.endswith("y") and t[-2] not in "aeiou":
        return re.escape(t[:-1]) + "(?:y|ies|ied|ying|ier|iest)"
    if t.endswith("e"):
        return re.escape(t[:-1]) + "(?:e(?:s|d|r|rs|st|n|m)?|ing)"
    return re.escape(t) + re.escape(t[-1]) + "?(?:s|es|ed|d|er|ers|est|ing|e|en|em|n|x)?"


@lru_cache(maxsize=4096)
def phrase_regex(phrase: str, inflect: bool = True) -> re.Pattern[str] | None:
    """Case-insensitive, word-bounded match of ``phrase`` (its last word inflected);
    CJK phrases match as substrings."""
    phrase = unicodedata.normalize("NFC", phrase.strip())
    if not phrase:
        return None
    if _CJK_RE.search(phrase):
        return re.compile(re.escape(phrase), re.IGNORECASE)
    words = re.split(r"[\s\-]+", phrase)
    parts = [re.escape(w.casefold()) for w in words[:-1]]
    parts.append(_inflected(words[-1]) if inflect else re.escape(words[-1].casefold()))
    body = r"[\s\-]+".join(parts)
    left = r"(?<!\w)" if re.match(r"\w", phrase) else ""
    right = r"(?!\w)" if re.search(r"\w$", phrase) else ""
    return re.compile(left + body + right, re.IGNORECASE)


def _prefilter_key(phrase: str) -> str:
    """A substring every match of ``phrase`` contains (its first word; a single word without
    its last letter, which inflection may change)."""
    words = re.split(r"[\s\-]+", unicodedata.normalize("NFC", phrase.strip()).casefold())
    if len(words) > 1 or _CJK_RE.search(phrase):
        return words[0]
    return words[0][:-1] if len(words[0]) > 3 else words[0]


@lru_cache(maxsize=256)
def _compiled_phrases(
    phrases: tuple[str, ...],
) -> tuple[tuple[str, str, re.Pattern[str] | None], ...]:
    return tuple((p, _prefilter_key(p), phrase_regex(p)) for p in phrases if p and p.strip())


def _find_phrases(
    check: str, variant: Variant, phrases: Iterable[str], severity: str, what: str
) -> list[CheckResult]:
    failures: list[CheckResult] = []
    compiled = _compiled_phrases(tuple(phrases))
    for name, text, _ in iter_texts(variant):
        norm = unicodedata.normalize("NFC", text)
        low = norm.casefold()
        hits = []
        for phrase, key, rx in compiled:
            if rx is None or key not in low:
                continue
            m = rx.search(norm)
            if m:
                hits.append((phrase, m.group()))
        if hits:
            failures.append(
                _fail(
                    check,
                    f"{what} “{hits[0][1]}”.",
                    field=name,
                    severity=severity,
                    words=[h[0] for h in hits],
                    tokens=[h[1] for h in hits],
                )
            )
    return failures


def check_banned_words(variant: Variant, brief: Brief) -> list[CheckResult]:
    """The brand's banned words, word-bounded, any case, simple inflections (error)."""
    words = [w for w in brief.brand.banned_words if w and w.strip()]
    return _ok("banned_words", _find_phrases("banned_words", variant, words, ERROR, "Banned word"))


SPAM_TRIGGERS: dict[str, tuple[str, ...]] = {
    "en": (
        "act now",
        "100% free",
        "click here",
        "guaranteed",
        "risk-free",
        "risk free",
        "no obligation",
        "you have been selected",
        "you're a winner",
        "winner",
        "cash bonus",
        "make money",
        "earn money",
        "double your",
        "no credit check",
        "miracle",
        "once in a lifetime",
        "order now!!!",
        "buy now!!!",
        "limited time only!!!",
        "congratulations",
        "100% satisfied",
        "no catch",
        "no strings attached",
    ),
    "de": (
        "jetzt handeln",
        "100 % gratis",
        "100% gratis",
        "100 % kostenlos",
        "100% kostenlos",
        "hier klicken",
        "klicken sie hier",
        "garantiert",
        "sie haben gewonnen",
        "gewinner",
        "ohne risiko",
        "risikofrei",
        "geld verdienen",
        "wunder",
        "einmalige gelegenheit",
        "herzlichen glückwunsch",
    ),
    "fr": (
        "agissez maintenant",
        "cliquez ici",
        "100 % gratuit",
        "100% gratuit",
        "garanti",
        "vous avez gagné",
        "gagnant",
        "sans risque",
        "argent facile",
        "gagnez de l'argent",
        "miracle",
        "offre unique",
        "félicitations",
    ),
    "es": (
        "actúe ahora",
        "actúa ahora",
        "haga clic aquí",
        "haz clic aquí",
        "100 % gratis",
        "100% gratis",
        "garantizado",
        "ha ganado",
        "has ganado",
        "ganador",
        "sin riesgo",
        "dinero fácil",
        "gane dinero",
        "gana dinero",
        "milagro",
        "felicidades",
    ),
    "zh": (
        "点击这里",
        "立即行动",
        "百分百免费",
        "100%免费",
        "保证",
        "赚钱",
        "中奖",
        "恭喜您",
        "恭喜你",
        "零风险",
        "无风险",
        "奇迹",
    ),
}
# In any locale: money symbols in a row, "FREE" shouted with exclamation marks.
_SPAM_ANY_RE = re.compile(
    r"(?:[$€£¥]\s*){3,}|\b(?:free|gratis|gratuit|kostenlos)\s*!{2,}|免费\s*[!！]{2,}", re.IGNORECASE
)


def check_spam(variant: Variant, brief: Brief) -> list[CheckResult]:
    """Spam-filter triggers for the locale (and, in any locale, the English ones and a few
    symbols): warning."""
    locale = (variant.locale or brief.locale or "en")[:2]
    phrases = list(SPAM_TRIGGERS.get(locale, ()))
    if locale != "en":
        phrases += SPAM_TRIGGERS["en"]
    failures = _find_phrases("spam", variant, phrases, WARNING, "Spam trigger")
    for name, text, _ in iter_texts(variant):
        m = _SPAM_ANY_RE.search(text)
        if m and not any(f.field == name for f in failures):
            failures.append(
                _fail(
                    "spam",
                    f"Spam trigger “{m.group()}”.",
                    field=name,
                    severity=WARNING,
                    words=[m.group()],
                    tokens=[m.group()],
                )
            )
    return _ok("spam", failures)


# --- capitals, exclamation marks ----------------------------------------------------------

CAPITALS_MIN_LETTERS = 20
CAPITALS_MAX_SHARE = 0.30
EXCLAMATIONS_WARN = 1  # more than this per field: warning
EXCLAMATIONS_ERROR = 3  # more than this per field: error


def capitals_share(text: str) -> tuple[float, int]:
    """(share of uppercase among cased letters, number of cased letters)."""
    upper = sum(map(str.isupper, text))
    n = upper + sum(map(str.islower, text))
    return (upper / n if n else 0.0), n


def check_capitals(variant: Variant) -> list[CheckResult]:
    """More than 30 % capitals in a field of at least 20 letters: warning."""
    failures: list[CheckResult] = []
    for name, text, _ in iter_texts(variant):
        share, n = capitals_share(text)
        if n >= CAPITALS_MIN_LETTERS and share > CAPITALS_MAX_SHARE:
            failures.append(
                _fail(
                    "capitals",
                    f"{round(share * 100)} % of the letters are capitals.",
                    field=name,
                    severity=WARNING,
                    share=round(share, 3),
                    letters=n,
                )
            )
    return _ok("capitals", failures)


def check_exclamations(variant: Variant) -> list[CheckResult]:
    """More than one exclamation mark in a field: warning; more than three: error."""
    failures: list[CheckResult] = []
    for name, text, _ in iter_texts(variant):
        n = text.count("!") + text.count("！")
        if n > EXCLAMATIONS_WARN:
            failures.append(
                _fail(
                    "exclamations",
                    f"{n} exclamation marks.",
                    field=name,
                    severity=ERROR if n > EXCLAMATIONS_ERROR else WARNING,
                    count=n,
                )
            )
    return _ok("exclamations", failures)


# --- readability --------------------------------------------------------------------------
# en  Flesch reading ease      206.835 − 1.015·ASL − 84.6·ASW
# de  Amstad (Flesch for de)   180 − ASL − 58.5·ASW
# fr  Kandel & Moles (1958)    207 − 1.015·ASL − 73.6·ASW
# es  Fernández Huerta (1959)  206.84 − 0.60·P − 1.02·ASL, P = syllables per 100 words
#     (= 206.84 − 60·ASW − 1.02·ASL; the corrected form, as in Law 2011 and textstat)
# zh  proxy: 100 − 2.5·max(0, ASL − 10), clipped to 0..100, ASL in characters per sentence
#     (a Han character or a Latin word counts 1): 30 characters per sentence scores 50.
# ASL: words per sentence; ASW: syllables per word (heuristic counts per language below).

READABILITY_THRESHOLDS = {"en": 60.0, "de": 50.0, "fr": 60.0, "es": 60.0, "zh": 50.0}
READABILITY_MIN_WORDS = 10
READABILITY_FORMULAS = {
    "en": "Flesch reading ease",
    "de": "Amstad",
    "fr": "Kandel–Moles",
    "es": "Fernández-Huerta",
    "zh": "sentence length",
}

_WORD_RE = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
_SENT_SPLIT_RE = re.compile(r"[.!?。！？;；…]+|\n+")
_VOWELS = {
    "en": "aeiouy",
    "de": "aeiouyäöü",
    "fr": "aeiouyàâäéèêëîïôöùûüœæ",
    "es": "aeiouáéíóúü",
}
_GROUP_RE = {k: re.compile(f"[{v}]+") for k, v in _VOWELS.items()}
_DE_DIPHTHONGS = ("ei", "ie", "eu", "äu", "au", "ai", "aa", "ee", "oo", "ey", "ay")
_ES_STRONG = set("aeoáéíóú")


@lru_cache(maxsize=65536)
def _syllables_en(word: str) -> int:
    w = word.lower().replace("’", "'").split("'")[0]
    if len(w) <= 3:
        return 1
    w = re.sub(r"(?:[^laeiouysxzcg]es|[^laeiouytd]ed|[^laeiouy]e)$", "", w)
    w = re.sub(r"^y", "", w)
    return max(1, len(_GROUP_RE["en"].findall(w)))


@lru_cache(maxsize=65536)
def _syllables_de(word: str) -> int:
    n = 0
    for g in _GROUP_RE["de"].findall(word.lower().replace("qu", "kw")):
        i = 0
        while i < len(g):
            i += 2 if g[i : i + 2] in _DE_DIPHTHONGS else 1
            n += 1
    return max(1, n)


@lru_cache(maxsize=65536)
def _syllables_fr(word: str) -> int:
    w = word.lower().replace("’", "'").split("'")[-1]
    groups = _GROUP_RE["fr"].findall(w)
    n = len(groups)
    if n > 1 and re.search(r"[^aeiouyàâäéèêëîïôöùûüœæ]es?$", w):
        n -= 1  # final mute e
    return max(1, n)


@lru_cache(maxsize=65536)
def _syllables_es(word: str) -> int:
    n = 0
    for g in _GROUP_RE["es"].findall(word.lower()):
        n += 1 + sum(
            1 for a, b in zip(g, g[1:], strict=False) if a in _ES_STRONG and b in _ES_STRONG
        )
    return max(1, n)


_SYLLABLES = {"en": _syllables_en, "de": _syllables_de, "fr": _syllables_fr, "es": _syllables_es}


def text_stats(text: str, locale: str) -> tuple[int, int, int]:
    """(sentences, words, syllables) with the locale's syllable heuristic."""
    count = _SYLLABLES.get(locale, _syllables_en)
    sentences = words = syllables = 0
    for sentence in _SENT_SPLIT_RE.split(text or ""):
        tokens = _WORD_RE.findall(sentence)
        if not tokens:
            continue
        sentences += 1
        words += len(tokens)
        syllables += sum(count(t) for t in tokens)
    return sentences, words, syllables


def flesch_reading_ease(text: str) -> float | None:
    s, w, y = text_stats(text, "en")
    return None if not w else 206.835 - 1.015 * (w / s) - 84.6 * (y / w)


def amstad(text: str) -> float | None:
    s, w, y = text_stats(text, "de")
    return None if not w else 180.0 - (w / s) - 58.5 * (y / w)


def kandel_moles(text: str) -> float | None:
    s, w, y = text_stats(text, "fr")
    return None if not w else 207.0 - 1.015 * (w / s) - 73.6 * (y / w)


def fernandez_huerta(text: str) -> float | None:
    s, w, y = text_stats(text, "es")
    return None if not w else 206.84 - 0.60 * (100.0 * y / w) - 1.02 * (w / s)


def zh_sentence_score(text: str) -> float | None:
    lengths = []
    for sentence in _SENT_SPLIT_RE.split(text or ""):
        n = len(_CJK_RE.findall(sentence)) + len(re.findall(r"[A-Za-z]+|\d+", sentence))
        if n:
            lengths.append(n)
    if not lengths:
        return None
    asl = sum(lengths) / len(lengths)
    return max(0.0, min(100.0, 100.0 - 2.5 * max(0.0, asl - 10.0)))


_READABILITY = {
    "en": flesch_reading_ease,
    "de": amstad,
    "fr": kandel_moles,
    "es": fernandez_huerta,
    "zh": zh_sentence_score,
}


def readability(text: str, locale: str) -> float | None:
    """The locale's readability score (higher is easier); None for no words."""
    fn = _READABILITY.get((locale or "en")[:2])
    return None if fn is None else fn(text)


def _word_count(text: str, locale: str) -> int:
    if locale == "zh":
        return len(_CJK_RE.findall(text)) // 2 + len(re.findall(r"[A-Za-z]+", text))
    return len(_WORD_RE.findall(text))


def check_readability(variant: Variant, brief: Brief | None = None) -> list[CheckResult]:
    """Per prose field of at least 10 words: a score below the locale's threshold is a
    warning (the disclaimer is left out of the measure)."""
    locale = (variant.locale or (brief.locale if brief else "en"))[:2]
    threshold = READABILITY_THRESHOLDS.get(locale)
    disclaimer = brief.brand.disclaimer if brief is not None else ""
    failures: list[CheckResult] = []
    scores: dict[str, float] = {}
    for name, text, spec in iter_texts(variant):
        if spec is None or not spec.prose or threshold is None:
            continue
        if disclaimer:
            text = _remove_phrase(text, disclaimer)
        if _word_count(text, locale) < READABILITY_MIN_WORDS:
            continue
        score = readability(text, locale)
        if score is None:
            continue
        scores[name] = round(score, 1)
        if score < threshold:
            failures.append(
                _fail(
                    "readability",
                    f"Hard to read: {READABILITY_FORMULAS[locale]} {score:.0f} "
                    f"(aim for {threshold:.0f} or more).",
                    field=name,
                    severity=WARNING,
                    score=round(score, 1),
                    threshold=threshold,
                    formula=READABILITY_FORMULAS[locale],
                )
            )
    return _ok("readability", failures, scores=scores)


# --- language -----------------------------------------------------------------------------

STOPWORDS: dict[str, frozenset[str]] = {
    "en": _words(
        "the and of to is are you your for with this that it in on our we be will at from by "
        "as an or now get just all more its it's has have was can what yours us so not out up "
        "make love they their every into here today than these those which while would"
    ),
    "de": _words(
        "der die das und ist sind mit für auf den dem des ein eine einen einem einer nicht sie "
        "ihr ihre ihren wir unser unsere unseren zu zum zur von im auch noch jetzt nur aus bei "
        "wie oder mehr dein deine deinen dich dir du ich es sich neue neuen heute schon alle "
        "entdecke entdecken hier wird werden ganz so"
    ),
    "fr": _words(
        "le la les un une des et est sont pour avec dans sur du de au aux ce cette ces votre "
        "vos nous vous notre nos qui que pas plus en il elle son sa ses ton ta tes tu très "
        "découvrez nouveau nouvelle aujourd'hui c'est l'été ici tout tous toute mais ou"
    ),
    "es": _words(
        "el la los las un una unos unas y es son para con en por del al que tu tus su sus "
        "nuestro nuestra nuestros nuestras más muy pero como lo este esta estos estas te nos ya "
        "hoy nuevo nueva descubre está o todo todos toda aquí tú usted"
    ),
}
_STOP_LANGS: dict[str, tuple[str, ...]] = {}
for _lang, _stop in STOPWORDS.items():
    for _w in _stop:
        _STOP_LANGS[_w] = (*_STOP_LANGS.get(_w, ()), _lang)
_HINT_CHARS = {"de": set("äöüß"), "fr": set("èêàâçùîôûëïœ"), "es": set("ñ¿¡áíóú")}
LANGUAGE_MIN_WORDS = 4


def detect_language(text: str) -> tuple[str | None, dict[str, float]]:
    """(best locale or None when unsure, scores). zh by its share of CJK characters; en, de,
    fr and es by stopwords and telltale letters. Abstains on fewer than 4 words."""
    cjk = len(_CJK_RE.findall(text))
    latin_words = _WORD_RE.findall(_CJK_RE.sub(" ", text))
    if cjk and cjk / (cjk + sum(len(w) for w in latin_words)) >= 0.3:
        return ("zh" if cjk >= 4 else None), {"zh": float(cjk)}
    words = [w.casefold().replace("’", "'") for w in latin_words]
    if len(words) < LANGUAGE_MIN_WORDS:
        return None, {}
    scores = dict.fromkeys(STOPWORDS, 0.0)
    for w in words:
        for lang in _STOP_LANGS.get(w, ()):
            scores[lang] += 1
        if "'" in w and w.split("'")[0] in ("l", "d", "qu", "c", "j", "n", "s"):
            scores["fr"] += 1  # elision: l'été, d'un, qu'il
        if not w.isascii():
            for lang, chars in _HINT_CHARS.items():
                if not chars.isdisjoint(w):
                    scores[lang] += 1
    best = max(scores, key=lambda k: scores[k])
    if scores[best] < 2:
        return None, scores
    return best, scores


@lru_cache(maxsize=8192)
def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    pattern = r"\s+".join(re.escape(p) for p in phrase.split())
    # bounded by anything but a Latin letter or digit (CJK text has no spaces)
    pattern = rf"(?<![0-9A-Za-z\u00c0-\u024f]){pattern}(?![0-9A-Za-z\u00c0-\u024f])"
    return re.compile(pattern, re.IGNORECASE)


@lru_cache(maxsize=4096)
def _names_pattern(names: tuple[str, ...]) -> re.Pattern[str] | None:
    """Any of ``names`` (longest first), bounded as in ``_remove_phrase``."""
    parts = [r"\s+".join(re.escape(p) for p in n.split()) for n in names if n.strip()]
    if not parts:
        return None
    body = "|".join(parts)
    return re.compile(
        rf"(?<![0-9A-Za-z\u00c0-\u024f])(?:{body})(?![0-9A-Za-z\u00c0-\u024f])", re.IGNORECASE
    )


def _remove_phrase(text: str, phrase: str) -> str:
    phrase = phrase.strip()
    if not phrase:
        return text
    return _phrase_pattern(phrase).sub(" ", text)


def _names_of(sheets: Sequence[FactSheet], brief: Brief | None, recipient: Recipient | None):
    names: list[str] = []
    for s in sheets:
        names += [s.title, s.brand, *re.split(r"\s*[>/|]\s*", s.category)]
        names += list(s.attributes.values())
    if brief is not None:
        names += [brief.brand.sender, brief.brand.disclaimer]
        if brief.occasion is not None:
            names.append(brief.occasion.name)
    if recipient is not None:
        names.append(recipient.first_name)
    return sorted({n for n in names if n and n.strip()}, key=len, reverse=True)


def _language_names(sheets: Sequence[FactSheet], brief: Brief | None) -> tuple[str, ...]:
    """The names ``check_language`` leaves out, but the recipient's: ``_names_of`` and the
    leading words (two or more) of each title, longest first."""
    names = _names_of(sheets, brief, None)
    # a name shortened to fit a field ("Cotton Tote with a Very Long…" cut at a word) is
    # still the name: its leading words of two or more count too
    for s in sheets:
        words = s.title.split()
        names += [" ".join(words[:k]) for k in range(len(words) - 1, 1, -1)]
    return tuple(sorted(set(names), key=len, reverse=True))


def _without_names(text: str, names: tuple[str, ...], first: str) -> str:
    """``text`` with every name of ``names`` and ``first`` replaced by a space, exactly as one
    pattern of them all (``_names_pattern``) would. The pattern of ``names`` is the same for
    every recipient of the products (compiled once); the first name is matched on its own
    and, when its matches touch none of the others', its spans are simply added (a scan of
    the one pattern could only differ where they overlap; then that pattern is used)."""
    first = first if first and first.strip() and first not in names else ""
    if not first:
        pattern = _names_pattern(names)
        return pattern.sub(" ", text) if pattern is not None else text
    own = _names_pattern((first,))
    spans = [m.span() for m in own.finditer(text)] if own is not None else []
    if not spans:
        pattern = _names_pattern(names)
        return pattern.sub(" ", text) if pattern is not None else text
    base = _names_pattern(names)
    others = [m.span() for m in base.finditer(text)] if base is not None else []
    for a, b in spans:
        for c, d in others:
            if a < d and c < b or a == c:
                combined = _names_pattern(tuple(sorted({*names, first}, key=len, reverse=True)))
                return combined.sub(" ", text)  # type: ignore[union-attr]
    out, pos = [], 0
    for a, b in sorted(others + spans):
        out += [text[pos:a], " "]
        pos = b
    out.append(text[pos:])
    return "".join(out)


def check_language(
    variant: Variant,
    brief: Brief | None = None,
    sheets: Sequence[FactSheet] = (),
    *,
    recipient: Recipient | None = None,
) -> list[CheckResult]:
    """The text (without product names, brands, attribute values and the disclaimer) is in
    the variant's locale; error when another language clearly wins, silent when unsure."""
    locale = (variant.locale or (brief.locale if brief else "en"))[:2]
    text = " \n".join(t for _, t, _ in iter_texts(variant))
    text = _without_names(
        text, _language_names(sheets, brief), recipient.first_name if recipient else ""
    )
    detected, scores = detect_language(text)
    if detected is None or detected == locale:
        return _ok("language", [], detected=detected)
    if locale == "zh" or detected == "zh" or scores.get(detected, 0) > 2 * scores.get(locale, 0):
        return [
            _fail(
                "language",
                f"The text reads as {detected!r}, not {locale!r}.",
                detected=detected,
                expected=locale,
                scores=scores,
            )
        ]
    return _ok("language", [], detected=detected)


# --- disclaimer ---------------------------------------------------------------------------


def _squash(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def check_disclaimer(variant: Variant, brief: Brief) -> list[CheckResult]:
    """The brand's required disclaimer appears in each field that has room for it (email
    body, long product text)."""
    disclaimer = brief.brand.disclaimer.strip()
    if not disclaimer:
        return _ok("disclaimer", [])
    failures: list[CheckResult] = []
    for spec in FIELDS.get(variant.channel, ()):
        if not spec.disclaimer:
            continue
        text = _as_text((variant.fields or {}).get(spec.name))
        if _squash(disclaimer) not in _squash(text):
            failures.append(
                _fail(
                    "disclaimer",
                    f"{spec.label}: the required disclaimer is missing.",
                    field=spec.name,
                    disclaimer=disclaimer,
                )
            )
    return _ok("disclaimer", failures)


# --- fidelity -----------------------------------------------------------------------------


class PhraseIndex:
    """Find any of many phrases (catalog titles, attribute values) in a text by word
    tokens, without one regex per phrase. Build once per catalog, reuse for every variant."""

    def __init__(self, phrases: Iterable[str] | Mapping[str, Any], *, min_chars: int = 3):
        # one-word phrases by their word; longer ones by their first two words (a title's
        # first word alone, "set", "pack", would start hundreds of them)
        self._single: dict[str, list[str]] = {}
        self._by_pair: dict[tuple[str, str], list[tuple[tuple[str, ...], str]]] = {}
        self._cjk: list[str] = []
        self._starts: set[str] = set()  # first words of the phrases
        items = phrases.items() if isinstance(phrases, Mapping) else ((p, p) for p in phrases)
        self.payload: dict[str, Any] = {}
        for phrase, payload in items:
            phrase = (phrase or "").strip()
            if len(phrase) < min_chars and not _CJK_RE.search(phrase):
                continue
            self.payload.setdefault(phrase, payload)
            if _CJK_RE.search(phrase):
                self._cjk.append(phrase)
                continue
            toks = tokens(phrase)
            if toks:
                self._starts.add(toks[0])
            if len(toks) == 1:
                self._single.setdefault(toks[0], []).append(phrase)
            elif toks:
                self._by_pair.setdefault(toks[:2], []).append((toks, phrase))

    def __len__(self) -> int:
        return len(self.payload)

    def find(self, text: str, toks: tuple[str, ...] | None = None) -> list[str]:
        """The phrases in ``text`` (``toks``: its ``tokens`` when already known)."""
        if toks is None:
            toks = tokens(text)
        found: list[str] = []
        single, by_pair, starts = self._single, self._by_pair, self._starts
        for i, tok in enumerate(toks):
            if tok not in starts:
                continue
            for phrase in single.get(tok, ()):
                if phrase not in found:
                    found.append(phrase)
            for seq, phrase in by_pair.get(toks[i : i + 2], ()):
                if toks[i : i + len(seq)] == seq and phrase not in found:
                    found.append(phrase)
        low = text.casefold()
        found += [p for p in self._cjk if p.casefold() in low and p not in found]
        return found


def tokens(text: str) -> tuple[str, ...]:
    return tuple(re.findall(r"\w+", unicodedata.normalize("NFC", text or "").casefold()))


def _contains_seq(haystack: str, phrase: str) -> bool:
    """``phrase`` occurs as a word sequence in ``haystack`` (a space-joined token string)."""
    if _CJK_RE.search(phrase):
        return phrase.casefold() in haystack
    return f" {' '.join(tokens(phrase))} " in haystack


_INDEX_CACHE: dict[int, tuple[Any, PhraseIndex]] = {}


def _phrase_index(obj: Any) -> PhraseIndex | None:
    if obj is None:
        return None
    if isinstance(obj, PhraseIndex):
        return obj
    hit = _INDEX_CACHE.get(id(obj))
    if hit is not None and hit[0] is obj:
        return hit[1]
    if len(_INDEX_CACHE) > 16:
        _INDEX_CACHE.clear()
    index = PhraseIndex(obj)
    _INDEX_CACHE[id(obj)] = (obj, index)
    return index


def attribute_index(known_attributes: Mapping[str, Iterable[str]]) -> PhraseIndex:
    """Catalog-wide attribute values → their keys, for ``check_fidelity(known_attributes=)``."""
    by_value: dict[str, set[str]] = {}
    for key, values in known_attributes.items():
        for v in values:
            v = str(v).strip()
            if v and not v.replace(".", "").replace(",", "").isdigit():
                by_value.setdefault(v, set()).add(str(key).casefold())
    return PhraseIndex(by_value)


@dataclass
class _SheetFacts:
    prices: dict[str, set[Decimal]] = field(default_factory=dict)  # currency -> prices
    numbers: set[Decimal] = field(default_factory=set)
    percents: set[Decimal] = field(default_factory=set)
    titles: list[str] = field(default_factory=list)
    attrs: dict[str, set[str]] = field(default_factory=dict)  # key -> casefolded values
    own_text: str = " "  # space-joined tokens of every fact


_SHEET_CACHE: dict[int, tuple[FactSheet, _SheetFacts]] = {}


def _sheet_facts(sheet: FactSheet) -> _SheetFacts:
    hit = _SHEET_CACHE.get(id(sheet))
    if hit is not None and hit[0] is sheet:
        return hit[1]
    sf = _SheetFacts()
    texts = [sheet.title, sheet.brand, sheet.category, sheet.description, *sheet.reviews]
    for k, v in sheet.attributes.items():
        texts += [str(k), str(v)]
        sf.attrs.setdefault(str(k).casefold(), set()).add(str(v).casefold())
    for fact in sheet.facts:
        if isinstance(fact.value, (int, float, Decimal)) and not isinstance(fact.value, bool):
            sf.numbers.add(Decimal(str(fact.value)).normalize())
            if fact.kind == "price":
                sf.prices.setdefault(sheet.currency, set()).add(
                    Decimal(str(fact.value)).normalize()
                )
        else:
            texts.append(str(fact.value))
    if sheet.price is not None:
        sf.prices.setdefault(sheet.currency, set()).add(Decimal(sheet.price).normalize())
        sf.numbers.add(Decimal(sheet.price).normalize())
    for value in (sheet.rating, sheet.review_count or None, sheet.stock_quantity):
        if value is not None:
            sf.numbers.add(Decimal(str(value)).normalize())
    if sheet.rating is not None:
        sf.numbers.add(Decimal(5))  # the scale: "4.5/5"
    for t in texts:
        sf.numbers |= numbers_in(t)
        sf.percents |= percents_in(t)
    sf.titles = [sheet.title] if sheet.title else []
    sf.own_text = " " + " ".join(" ".join(tokens(t)) for t in texts) + " "
    if len(_SHEET_CACHE) > 4096:
        _SHEET_CACHE.clear()
    _SHEET_CACHE[id(sheet)] = (sheet, sf)
    return sf


# Currency symbols as written by CLDR in our locales, and common others: symbol -> codes.
_DOLLARS = frozenset({"USD", "CAD", "AUD", "NZD", "HKD", "SGD", "MXN", "TWD"})
_STATIC_SYMBOLS: dict[str, frozenset[str]] = {
    "$": _DOLLARS,
    "US$": frozenset({"USD"}),
    "$US": frozenset({"USD"}),
    "£": frozenset({"GBP"}),
    "£GB": frozenset({"GBP"}),
    "€": frozenset({"EUR"}),
    "¥": frozenset({"JPY", "CNY"}),
    "￥": frozenset({"JPY", "CNY"}),
    "CN¥": frozenset({"CNY"}),
    "JP¥": frozenset({"JPY"}),
    "元": frozenset({"CNY"}),
    "RMB": frozenset({"CNY"}),
    "₹": frozenset({"INR"}),
    "kr": frozenset({"SEK", "NOK", "DKK", "ISK"}),
    "zł": frozenset({"PLN"}),
    "CA$": frozenset({"CAD"}),
    "$CA": frozenset({"CAD"}),
    "C$": frozenset({"CAD"}),
    "A$": frozenset({"AUD"}),
    "AU$": frozenset({"AUD"}),
    "$AU": frozenset({"AUD"}),
    "NZ$": frozenset({"NZD"}),
    "HK$": frozenset({"HKD"}),
    "MX$": frozenset({"MXN"}),
    "R$": frozenset({"BRL"}),
    "₩": frozenset({"KRW"}),
    "₽": frozenset({"RUB"}),
    "₺": frozenset({"TRY"}),
    "Fr.": frozenset({"CHF"}),
}


# ISO codes read as a currency next to a number (not all of ISO 4217: "ALL 3", "TOP 10").
COMMON_CURRENCIES = _words(
    "USD EUR GBP CNY JPY CHF SEK NOK DKK ISK PLN CZK HUF RON BGN CAD AUD NZD INR BRL MXN KRW "
    "HKD SGD TWD RUB TRY ZAR AED SAR ILS THB MYR IDR PHP VND"
)


_SYMBOL_LOOKAROUND = 8  # characters looked at on each side of a number


@dataclass(frozen=True)
class _MoneyPatterns:
    pre: re.Pattern[str]  # a symbol right before a number: search in the slice before it
    post: re.Pattern[str]  # a symbol right after a number: match at the slice after it
    symbols: dict[str, frozenset[str]]  # symbol -> ISO codes


@lru_cache(maxsize=64)
def _money_patterns(currencies: frozenset[str]) -> _MoneyPatterns:
    symbols: dict[str, set[str]] = {k: set(v) for k, v in _STATIC_SYMBOLS.items()}
    for code in COMMON_CURRENCIES:
        symbols.setdefault(code, set()).add(code)
    for code in currencies:
        if not code:  # a sheet without a currency: no symbol to find (and "" matches anywhere)
            continue
        symbols.setdefault(code, set()).add(code)
        for loc in LOCALES:
            try:
                sym = get_currency_symbol(code, locale=loc)
            except Exception:  # noqa: S112 - an unknown code simply has no symbol
                continue
            symbols.setdefault(sym, set()).add(code)
    parts = []
    for sym in sorted(symbols, key=len, reverse=True):
        if not sym:
            continue
        esc = re.escape(sym)
        if sym[0].isalpha():
            esc = r"(?<![^\W\d_])" + esc
        if sym[-1].isalpha():
            esc = esc + r"(?![^\W\d_])"
        parts.append(esc)
    sym_re = "(?:" + "|".join(parts) + ")"
    sp = r"[ \u00a0\u202f\u2009]?"
    return _MoneyPatterns(
        pre=re.compile(rf"({sym_re}){sp}$"),
        post=re.compile(rf"{sp}({sym_re})"),
        symbols={k: frozenset(v) for k, v in symbols.items()},
    )


def _money_spans(text: str, patterns: _MoneyPatterns):
    """``(start, end, symbol, number)`` for each number with a currency next to it."""
    for m in NUMBER_RE.finditer(text):
        before = text[max(0, m.start() - _SYMBOL_LOOKAROUND) : m.start()]
        pre = patterns.pre.search(before) if before else None
        if pre is not None:
            yield m.start() - (len(before) - pre.start()), m.end(), pre.group(1), m.group()
            continue
        post = patterns.post.match(text, m.end(), m.end() + _SYMBOL_LOOKAROUND)
        if post is not None:
            yield m.start(), post.end(), post.group(1), m.group()


_DATE_RES = (
    re.compile(r"(?<![\d.,/-])(\d{1,4})([./-])(\d{1,2})\2(\d{1,4})(?![\d])"),
    re.compile(r"(\d{4})\s?年\s?(\d{1,2})\s?月(?:\s?(\d{1,2})\s?[日号])?"),
    re.compile(r"(?<!\d)(\d{1,2})\s?月\s?(\d{1,2})\s?[日号]"),
)
_URL_RE = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)


def _mask(text: str, start: int, end: int) -> str:
    return text[:start] + " " * (end - start) + text[end:]


def _fmt(values: Iterable[Decimal]) -> list[str]:
    return [format(v, "f") for v in sorted(values)]


def check_fidelity(
    variant: Variant,
    sheets: Sequence[FactSheet],
    brief: Brief | None = None,
    *,
    known_titles: Iterable[str] | PhraseIndex | None = None,
    known_attributes: Mapping[str, Iterable[str]] | PhraseIndex | None = None,
    allowed_numbers: Iterable[Any] = (),
    allowed_percents: Iterable[Any] = (),
) -> list[CheckResult]:
    """Every price, number, percentage, product name and attribute value in the text comes
    from the draft's fact sheets (error).

    - A price (number next to a currency symbol or ISO code, any of our locales' formats)
      must equal the price of one of the draft's products in that currency.
    - A percentage ("30%", "30 %", "30 Prozent") must appear in the products' data.
    - Any other number must appear in the products' data (title, attributes, description,
      reviews, rating, review count, stock), the occasion (name, end date), the brand's
      disclaimer or sender, or ``allowed_numbers``; a date's parts likewise.
    - ``known_titles`` (the catalog's titles, ideally a PhraseIndex built once): the title of
      a product that is not in the draft is a violation unless those words also occur in the
      draft's own product data.
    - ``known_attributes`` (key -> catalog values, or ``attribute_index(...)``): a value of an
      attribute that a draft product has (e.g. color) must be that product's value.
    """
    facts = [_sheet_facts(s) for s in sheets]
    prices: dict[str, set[Decimal]] = {}
    numbers: set[Decimal] = set()
    percents: set[Decimal] = set()
    own_titles: set[str] = set()
    own_attrs: dict[str, set[str]] = {}
    own_text = " "
    for sf in facts:
        for cur, ps in sf.prices.items():
            prices.setdefault(cur, set()).update(ps)
        numbers |= sf.numbers
        percents |= sf.percents
        own_titles.update(t.casefold() for t in sf.titles)
        for k, vs in sf.attrs.items():
            own_attrs.setdefault(k, set()).update(vs)
        own_text += sf.own_text
    date_parts: set[Decimal] = set()
    disclaimer = ""
    if brief is not None:
        disclaimer = brief.brand.disclaimer
        numbers |= numbers_in(brief.brand.sender)
        if brief.occasion is not None:
            occ = brief.occasion
            numbers |= numbers_in(occ.name) | numbers_in(occ.key.replace("_", " "))
            date_parts = {Decimal(p).normalize() for p in re.findall(r"\d+", occ.ends_on or "")}
            date_parts |= {p % 100 for p in date_parts if p >= 1000}  # "29.11.24"
            numbers |= date_parts
    for v in allowed_numbers:
        numbers |= number_values(str(v))
    for v in allowed_percents:
        percents |= number_values(str(v))
    locale = variant.locale or (brief.locale if brief else "en")
    expected_prices: list[str] = []  # formatted on the first price failure (Babel is slow)
    money = _money_patterns(frozenset(prices))
    titles_index = _phrase_index(known_titles)
    if isinstance(known_attributes, PhraseIndex) or known_attributes is None:
        attrs_index = known_attributes
    else:
        attrs_index = attribute_index(known_attributes)

    failures: list[CheckResult] = []

    def fail(name: str, kind: str, token: str, message: str, **details: Any) -> None:
        failures.append(_fail("fidelity", message, field=name, kind=kind, token=token, **details))

    for name, original, _ in iter_texts(variant):
        text = unicodedata.normalize("NFC", original)
        if disclaimer:
            text = _remove_phrase(text, disclaimer)
        for m in _URL_RE.finditer(text):
            text = _mask(text, m.start(), m.end())
        # prices
        for start, end, sym, num in list(_money_spans(text, money)):
            token = text[start:end].strip()
            codes = money.symbols.get(sym, frozenset())
            values = number_candidates(num)
            if not any(values & prices.get(code, set()) for code in codes):
                if not expected_prices:
                    expected_prices = [
                        format_price(p, cur, locale)
                        for cur, ps in sorted(prices.items())
                        for p in sorted(ps)
                    ]
                wrong_currency = any(values & ps for ps in prices.values())
                fail(
                    name,
                    "price",
                    token,
                    (
                        f"Price {token} is in the wrong currency"
                        if wrong_currency
                        else f"Price {token} is not in the product data"
                    )
                    + (f"; expected {', '.join(expected_prices)}." if expected_prices else "."),
                    value=_fmt(values),
                    currencies=sorted(codes),
                    expected=expected_prices,
                )
            text = _mask(text, start, end)
        # percentages
        for m in PERCENT_RE.finditer(text):
            values = number_candidates(m.group(1))
            if not values & percents:
                fail(
                    name,
                    "percent",
                    m.group(),
                    f"{m.group()} is not in the product data.",
                    value=_fmt(values),
                    expected=_fmt(percents),
                )
            text = _mask(text, m.start(), m.end())
        # dates
        for rx in _DATE_RES:
            for m in rx.finditer(text):
                parts = [Decimal(g).normalize() for g in m.groups() if g and g.isdigit()]
                bad = [p for p in parts if p not in numbers]
                if bad:
                    fail(
                        name,
                        "date",
                        m.group(),
                        f"Date {m.group()} is not the occasion's.",
                        value=_fmt(bad),
                        expected=_fmt(date_parts),
                    )
                text = _mask(text, m.start(), m.end())
        # other numbers
        for m in NUMBER_RE.finditer(text):
            values = number_values(m.group())
            if values & numbers:
                continue
            pieces = {Decimal(p).normalize() for p in re.split(r"\D+", m.group()) if p}
            if date_parts and pieces <= date_parts:
                continue  # "11.11" for an occasion ending on the 11th of November
            fail(
                name,
                "number",
                m.group(),
                f"The number {m.group()} is not in the product data.",
                value=_fmt(values),
                expected=_fmt(numbers)[:30],
            )
        # product names
        toks = tokens(text)
        if titles_index is not None and len(titles_index):
            for title in titles_index.find(text, toks):
                if title.casefold() in own_titles or _contains_seq(own_text, title):
                    continue
                fail(
                    name,
                    "product",
                    title,
                    f"“{title}” is another product, not one of this draft's.",
                    expected=sorted(s.title for s in sheets),
                )
        # attribute values
        if attrs_index is not None and len(attrs_index):
            for value in attrs_index.find(text, toks):
                keys = attrs_index.payload[value] & set(own_attrs)
                if not keys or _contains_seq(own_text, value):
                    continue
                key = sorted(keys)[0]
                fail(
                    name,
                    "attribute",
                    value,
                    f"“{value}” is not this product's {key}.",
                    attribute=key,
                    expected=sorted(own_attrs[key]),
                )
    return _ok("fidelity", failures)


# --- all ----------------------------------------------------------------------------------


def check_variant(
    variant: Variant,
    sheets: Sequence[FactSheet],
    brief: Brief,
    *,
    recipient: Recipient | None = None,
    known_titles: Iterable[str] | PhraseIndex | None = None,
    known_attributes: Mapping[str, Iterable[str]] | PhraseIndex | None = None,
    allowed_numbers: Iterable[Any] = (),
    allowed_percents: Iterable[Any] = (),
) -> list[CheckResult]:
    """Run every check (see CHECKS) on one variant; failures first by check order."""
    if variant.channel not in FIELDS:
        return check_required(variant)
    _TEXTS[id(variant)] = iter_texts(variant)
    try:
        return _check_all(
            variant,
            sheets,
            brief,
            recipient=recipient,
            known_titles=known_titles,
            known_attributes=known_attributes,
            allowed_numbers=allowed_numbers,
            allowed_percents=allowed_percents,
        )
    finally:
        _TEXTS.pop(id(variant), None)


def _check_all(
    variant: Variant,
    sheets: Sequence[FactSheet],
    brief: Brief,
    *,
    recipient,
    known_titles,
    known_attributes,
    allowed_numbers,
    allowed_percents,
) -> list[CheckResult]:
    results: list[CheckResult] = []
    results += check_required(variant)
    results += check_limits(variant, brief)
    results += check_placeholders(variant)
    results += check_markup(variant)
    results += check_banned_words(variant, brief)
    results += check_spam(variant, brief)
    results += check_capitals(variant)
    results += check_exclamations(variant)
    results += check_readability(variant, brief)
    results += check_language(variant, brief, sheets, recipient=recipient)
    results += check_disclaimer(variant, brief)
    results += check_fidelity(
        variant,
        sheets,
        brief,
        known_titles=known_titles,
        known_attributes=known_attributes,
        allowed_numbers=allowed_numbers,
        allowed_percents=allowed_percents,
    )
    return results
