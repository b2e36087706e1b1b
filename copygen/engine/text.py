"""Small text helpers shared by the engine: plain text from catalog markup, tokens, stop
words per locale, a language guess, sentence splitting."""

from __future__ import annotations

import html
import re
from functools import lru_cache

_SCRIPT = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]{0,500}>")
_SPACE = re.compile(r"[ \t\r\f\v\u00a0]+")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*|\d+(?:[.,]\d+)*", re.UNICODE)
_SENT = re.compile(r"(?<=[.!?。！？;；])\s*|\n+")

STOP_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        [
            "a",
            "about",
            "above",
            "after",
            "again",
            "against",
            "all",
            "also",
            "am",
            "an",
            "and",
            "any",
            "are",
            "aren't",
            "as",
            "at",
            "be",
            "because",
            "been",
            "before",
            "being",
            "below",
            "between",
            "both",
            "but",
            "by",
            "can",
            "could",
            "did",
            "do",
            "does",
            "doing",
            "don't",
            "down",
            "during",
            "each",
            "even",
            "ever",
            "every",
            "few",
            "for",
            "from",
            "further",
            "get",
            "gets",
            "got",
            "had",
            "has",
            "have",
            "having",
            "he",
            "her",
            "here",
            "hers",
            "herself",
            "him",
            "himself",
            "his",
            "how",
            "i",
            "i'm",
            "i've",
            "if",
            "in",
            "into",
            "is",
            "isn't",
            "it",
            "it's",
            "its",
            "itself",
            "just",
            "let's",
            "like",
            "made",
            "make",
            "many",
            "may",
            "me",
            "might",
            "more",
            "most",
            "much",
            "must",
            "my",
            "myself",
            "no",
            "nor",
            "not",
            "now",
            "of",
            "off",
            "on",
            "once",
            "one",
            "only",
            "or",
            "other",
            "our",
            "ours",
            "ourselves",
            "out",
            "over",
            "own",
            "really",
            "same",
            "she",
            "should",
            "so",
            "some",
            "such",
            "than",
            "that",
            "that's",
            "the",
            "their",
            "theirs",
            "them",
            "themselves",
            "then",
            "there",
            "these",
            "they",
            "this",
            "those",
            "through",
            "to",
            "too",
            "under",
            "until",
            "up",
            "upon",
            "us",
            "very",
            "was",
            "wasn't",
            "we",
            "were",
            "what",
            "when",
            "where",
            "which",
            "while",
            "who",
            "whom",
            "why",
            "will",
            "with",
            "would",
            "you",
            "your",
            "yours",
            "yourself",
            "yourselves",
            "bit",
            "lot",
            "little",
            "well",
            "still",
            "way",
            "thing",
            "things",
            "since",
            "per",
            "via",
            "etc",
        ]
    ),
    "de": frozenset(
        [
            "aber",
            "alle",
            "allem",
            "allen",
            "aller",
            "alles",
            "als",
            "also",
            "am",
            "an",
            "ander",
            "andere",
            "anderem",
            "anderen",
            "anderer",
            "auch",
            "auf",
            "aus",
            "bei",
            "bin",
            "bis",
            "bist",
            "da",
            "damit",
            "dann",
            "das",
            "dass",
            "dein",
            "deine",
            "dem",
            "den",
            "der",
            "des",
            "dessen",
            "die",
            "dies",
            "diese",
            "diesem",
            "diesen",
            "dieser",
            "dieses",
            "doch",
            "dort",
            "du",
            "durch",
            "ein",
            "eine",
            "einem",
            "einen",
            "einer",
            "eines",
            "er",
            "es",
            "etwas",
            "euer",
            "für",
            "gegen",
            "hab",
            "habe",
            "haben",
            "hat",
            "hatte",
            "hier",
            "hin",
            "hinter",
            "ich",
            "ihm",
            "ihn",
            "ihr",
            "ihre",
            "im",
            "in",
            "ist",
            "ja",
            "jede",
            "jedem",
            "jeden",
            "jeder",
            "jedes",
            "jetzt",
            "kann",
            "kein",
            "keine",
            "mein",
            "meine",
            "mit",
            "muss",
            "nach",
            "nicht",
            "nichts",
            "noch",
            "nun",
            "nur",
            "ob",
            "oder",
            "ohne",
            "sehr",
            "sein",
            "seine",
            "sich",
            "sie",
            "sind",
            "so",
            "solche",
            "soll",
            "sondern",
            "um",
            "und",
            "uns",
            "unser",
            "unter",
            "viel",
            "vom",
            "von",
            "vor",
            "war",
            "waren",
            "was",
            "weil",
            "wenn",
            "wer",
            "wie",
            "wir",
            "wird",
            "wo",
            "zu",
            "zum",
            "zur",
            "über",
        ]
    ),
    "fr": frozenset(
        [
            "a",
            "au",
            "aux",
            "avec",
            "ce",
            "ces",
            "cet",
            "cette",
            "dans",
            "de",
            "des",
            "du",
            "elle",
            "elles",
            "en",
            "est",
            "et",
            "eux",
            "il",
            "ils",
            "je",
            "la",
            "le",
            "les",
            "leur",
            "leurs",
            "lui",
            "ma",
            "mais",
            "me",
            "mes",
            "moi",
            "mon",
            "même",
            "ne",
            "ni",
            "nos",
            "notre",
            "nous",
            "on",
            "ou",
            "où",
            "par",
            "pas",
            "pour",
            "qu",
            "que",
            "qui",
            "sa",
            "se",
            "ses",
            "son",
            "sont",
            "sur",
            "ta",
            "te",
            "tes",
            "toi",
            "ton",
            "tu",
            "un",
            "une",
            "vos",
            "votre",
            "vous",
            "y",
            "été",
            "être",
            "avoir",
            "très",
            "plus",
            "tout",
            "tous",
            "toute",
            "toutes",
            "aussi",
            "comme",
        ]
    ),
    "es": frozenset(
        [
            "a",
            "al",
            "algo",
            "como",
            "con",
            "de",
            "del",
            "el",
            "ella",
            "ellas",
            "ellos",
            "en",
            "entre",
            "era",
            "es",
            "esa",
            "ese",
            "eso",
            "esta",
            "este",
            "esto",
            "estos",
            "está",
            "están",
            "fue",
            "ha",
            "han",
            "hay",
            "la",
            "las",
            "le",
            "les",
            "lo",
            "los",
            "mas",
            "me",
            "mi",
            "mis",
            "muy",
            "más",
            "ni",
            "no",
            "nos",
            "o",
            "para",
            "pero",
            "por",
            "que",
            "qué",
            "se",
            "sea",
            "ser",
            "si",
            "sin",
            "sobre",
            "son",
            "su",
            "sus",
            "también",
            "te",
            "tiene",
            "todo",
            "todos",
            "tu",
            "tus",
            "un",
            "una",
            "unas",
            "uno",
            "unos",
            "y",
            "ya",
            "yo",
        ]
    ),
    "zh": frozenset(
        [
            "的",
            "了",
            "和",
            "是",
            "在",
            "我",
            "有",
            "也",
            "就",
            "都",
            "这",
            "那",
            "你",
            "他",
            "她",
            "它",
            "们",
            "与",
            "及",
            "或",
            "很",
            "非常",
            "一个",
            "上",
            "下",
            "中",
        ]
    ),
}
ALL_STOP_WORDS = frozenset().union(*STOP_WORDS.values())


def plain_text(text: str) -> str:
    """Catalog text as plain text: scripts and styles dropped, tags removed, entities
    decoded, whitespace collapsed (line breaks kept). Never adds markup; the templates
    escape what is left."""
    if not text:
        return ""
    s = str(text)
    if "<" in s:
        s = _SCRIPT.sub(" ", s)
        s = _TAG.sub(" ", s)
    if "&" in s:
        s = html.unescape(s)
        if "<" in s:  # decoded markup ("&lt;b&gt;") is still not ours to keep
            s = _SCRIPT.sub(" ", s)
            s = _TAG.sub(" ", s)
    s = s.replace("<", " ").replace(">", " ")
    s = _SPACE.sub(" ", s)
    return "\n".join(line.strip() for line in s.split("\n") if line.strip())


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENT.split(plain_text(text)) if s and s.strip()]


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 5 and word.endswith(("rves", "lves")):
        return word[:-3] + "f"
    if len(word) > 4 and word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def words(text: str) -> list[str]:
    """Surface word tokens (letters, with inner hyphens/apostrophes; numbers kept)."""
    return _WORD.findall(text)


_SCRIPT_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+|[^\u3400-\u9fff\uf900-\ufaff]+")


def tokens(text: str, *, stop: frozenset[str] = ALL_STOP_WORDS) -> list[str]:
    """Lowercased, lightly stemmed content tokens; CJK runs become character bigrams. A
    word run mixing scripts ("为你推荐linen") is split where the script changes, so the
    Latin word stays a word."""
    out: list[str] = []
    for run in _WORD.findall(
        plain_text(text).lower() if "<" in text or "&" in text else text.lower()
    ):
        parts = _SCRIPT_RUN.findall(run) if _CJK.search(run) else (run,)
        for w in parts:
            if w[0].isdigit() or w in stop:
                continue
            if _CJK.search(w):
                chars = [c for c in w if c not in stop]
                out.extend(chars[i] + chars[i + 1] for i in range(len(chars) - 1))
                if len(chars) == 1:
                    out.append(chars[0])
                continue
            w = w.strip("'’-")
            if len(w) > 1:
                out.append(_stem(w))
    return out


def guess_language(text: str, default: str = "en") -> str:
    """The locale whose stop words the text uses most (zh for CJK text)."""
    if has_cjk(text):
        return "zh"
    ws = [w.lower() for w in _WORD.findall(text)]
    if not ws:
        return default
    best, best_n = default, 0
    for loc, stop in STOP_WORDS.items():
        if loc == "zh":
            continue
        n = sum(w in stop for w in ws)
        if n > best_n:
            best, best_n = loc, n
    return best
