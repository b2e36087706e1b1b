"""Contact data in the exact form each target matches or hashes it.

Ad platforms match hashed identifiers, so a hash only matches when both sides normalised the
value the same way before hashing; a stray space or capital letter makes a different hash
and a lost match. The rules below follow the targets' published rules:

Google Ads Customer Match ("Customer Match data formatting guidelines" / "Normalize and hash
user-provided data"): email, phone, first name and last name are normalised and SHA-256
hashed (hex); email: trim, lower-case, and for gmail.com / googlemail.com remove every "."
before the "@"; phone: E.164 ("+" country code number); names: trim, lower-case. Country
(ISO 3166-1 alpha-2) and zip are sent as they are, NOT hashed.

Meta custom audiences ("Customer list custom audiences: hashing and normalisation"): email,
phone, fn, ln, zip, ct, st and country are all normalised and SHA-256 hashed (hex); email:
trim, lower-case; phone: digits only with the country code, no "+" and no leading zeros;
fn / ln: lower-case, no punctuation, other letters kept in UTF-8; zip: lower-case, no
spaces and no dashes, US: the first 5 digits, UK: area, district and sector ("sw1a 1aa" ->
"sw1a1"); country: ISO 3166-1 alpha-2 in lower case. An empty value stays empty (never the
hash of "").

Every function returns None for a value it cannot normalise, so a caller can tell "no
usable value" from a value; none of them raises on bad input.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import lru_cache

import phonenumbers
from babel import Locale
from babel.core import get_global

__all__ = [
    "normalize_country",
    "normalize_email",
    "normalize_name",
    "normalize_phone",
    "normalize_zip",
    "phone_digits",
    "sha256_hex",
    "split_name",
]

_GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
# re's \s in a str pattern is str.isspace() per character: one search in C per address.
_WHITESPACE = re.compile(r"\s")


def sha256_hex(text: str) -> str:
    """SHA-256 of the UTF-8 bytes of ``text`` as 64 lower-case hex digits (what both Google
    and Meta expect for pre-hashed uploads)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalize_email(value: object, *, gmail_dots: bool = False) -> str | None:
    """Trimmed, lower-cased address, or None when it is not one address.

    An address has exactly one "@", a non-empty local part, and a domain with a dot that
    neither starts nor ends the domain; whitespace inside is rejected. ``gmail_dots``
    (Google Customer Match only, Meta does not do it) drops "." from the local part of
    gmail.com / googlemail.com addresses, which Gmail ignores when delivering.
    """
    text = "" if value is None else unicodedata.normalize("NFC", str(value)).strip().lower()
    if not text or text.count("@") != 1 or _WHITESPACE.search(text):
        return None
    local, domain = text.split("@")
    if not local or "." not in domain or domain.startswith(".") or domain.endswith("."):
        return None
    if ".." in domain:
        return None
    if gmail_dots and domain in _GMAIL_DOMAINS:
        local = local.replace(".", "")
        if not local:
            return None
    return f"{local}@{domain}"


def normalize_phone(value: object, default_region: str | None) -> str | None:
    """E.164 form ("+4915112345678") of a valid number, or None.

    ``default_region`` is the customer's country as ISO 3166-1 alpha-2 ("DE"); it is only
    used for numbers written without "+" or "00" (a national number such as "030 1234567").
    Without it such a number cannot be placed and gives None.
    """
    text = "" if value is None else str(value).strip()
    if not text:
        return None
    region = (default_region or "").strip().upper()
    region = region if len(region) == 2 and region.isalpha() else None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_digits(e164: str) -> str:
    """Meta's phone form: the digits of an E.164 number, country code first, no "+"."""
    return re.sub(r"\D", "", e164 or "")


def _strip_punctuation(text: str) -> str:
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))


def normalize_name(value: object, *, strip_punctuation: bool = False) -> str | None:
    """Trimmed, lower-cased name in Unicode NFC, or None when empty.

    Accents and non-Latin letters are kept (both targets hash UTF-8); lower() rather than
    casefold() so "ß" stays "ß" as the targets' own lower-casing leaves it. Inner runs of
    whitespace become one space. ``strip_punctuation`` (Meta: "no punctuation") removes
    every Unicode punctuation character, so "O'Brien" -> "obrien", "Jean-Luc" -> "jeanluc".
    """
    text = "" if value is None else unicodedata.normalize("NFC", str(value))
    if strip_punctuation:
        text = _strip_punctuation(text)
    text = " ".join(text.split()).lower()
    return text or None


def split_name(name: object) -> tuple[str, str]:
    """(first, last) of a full name: the first whitespace-separated token is the first name,
    the rest the last name ("Anna Maria Schmidt" -> ("Anna", "Maria Schmidt")).

    A deliberate simplification: names written family name first (Chinese, Hungarian) and
    single-token names ("王小明") come out as a first name only.
    """
    tokens = ("" if name is None else str(name)).split()
    if not tokens:
        return "", ""
    return tokens[0], " ".join(tokens[1:])


# --- countries -------------------------------------------------------------------------------

# English spellings the CLDR names (babel) do not cover: older or informal names, and the
# odd ones of the UCI Online Retail data set ("EIRE", "RSA", "USA"). "Channel Islands",
# "European Community", "West Indies" and "Unspecified" (also in that data) are not one
# country and stay unknown.
_COUNTRY_ALIASES: dict[str, str] = {
    "eire": "IE",
    "rsa": "ZA",
    "uk": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "united states of america": "US",
    "us": "US",
    "usa": "US",
    "uae": "AE",
    "holland": "NL",
    "czech republic": "CZ",
    "russian federation": "RU",
    "korea": "KR",
    "republic of korea": "KR",
    "korea republic of": "KR",
    "turkey": "TR",
    "ivory coast": "CI",
    "swaziland": "SZ",
    "macedonia": "MK",
    "burma": "MM",
    "myanmar": "MM",
    "vatican": "VA",
    "holy see": "VA",
    "palestine": "PS",
    "viet nam": "VN",
    "hong kong": "HK",
    "macao": "MO",
    "macau": "MO",
    "east timor": "TL",
    "cabo verde": "CV",
    "democratic republic of the congo": "CD",
    "dr congo": "CD",
    "republic of the congo": "CG",
}

# CLDR territories that are not countries (or have no place in a country column).
_NOT_COUNTRIES = frozenset({"EU", "EZ", "UN", "QO", "ZZ", "XA", "XB"})

# Besides English, the names in these languages are recognised ("Deutschland", "Allemagne"):
# Tailor's copy locales and the languages of its typical shops. A name that means different
# countries in two of them is dropped rather than guessed.
_EXTRA_NAME_LOCALES = ("de", "es", "fr", "it", "nl", "pt", "pl", "sv", "zh")


def _country_key(text: str) -> str:
    """Lookup key of a country name: no accents, case, dots or apostrophes; "&" is "and",
    "saint" is "st", other punctuation a space, and a leading "the" dropped."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    text = text.replace("&", " and ")
    text = re.sub(r"[.'’]", "", text)
    text = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text)
    words = text.split()
    if words and words[0] == "the":
        words = words[1:]
    return " ".join("st" if w == "saint" else w for w in words)


@lru_cache(maxsize=1)
def _country_index() -> dict[str, str]:
    english = Locale("en").territories
    codes = {c for c in english if len(c) == 2 and c.isalpha() and c not in _NOT_COUNTRIES}
    index: dict[str, str] = {}
    for code in codes:
        index[code.casefold()] = code
        name = english[code]
        index[_country_key(name)] = code
        if "(" in name:  # "Myanmar (Burma)" -> also "Myanmar"
            index[_country_key(name.split("(")[0])] = code
    # ISO 3166-1 alpha-3 codes ("DEU", "USA"): CLDR lists them as territory aliases.
    for alias, targets in get_global("territory_aliases").items():
        if len(alias) == 3 and alias.isalpha() and len(targets) == 1 and targets[0] in codes:
            index.setdefault(alias.casefold(), targets[0])
    index.update({_country_key(k): v for k, v in _COUNTRY_ALIASES.items()})
    other: dict[str, str | None] = {}
    for locale in _EXTRA_NAME_LOCALES:
        for code, name in Locale(locale).territories.items():
            if code in codes:
                key = _country_key(name)
                if key in index:
                    continue
                other[key] = code if other.get(key, code) == code else None
    index.update({k: v for k, v in other.items() if v is not None})
    return index


def normalize_country(value: object) -> str | None:
    """ISO 3166-1 alpha-2 code (upper case) from a code ("de", "DEU") or a country name
    ("Germany", "United Kingdom", "EIRE"), or None when it is not a known country."""
    text = "" if value is None else str(value).strip()
    if not text:
        return None
    return _country_of(text)


@lru_cache(maxsize=4096)  # a shop's customers write their country a few dozen ways
def _country_of(text: str) -> str | None:
    return _country_index().get(_country_key(text))


# --- postal codes ----------------------------------------------------------------------------

# A full UK postcode: outward code (area + district) and inward code (sector digit + unit).
_UK_POSTCODE = re.compile(r"^([a-z]{1,2}[0-9][a-z0-9]?)([0-9])[a-z]{2}$")


def normalize_zip(value: object, country: str | None, *, meta: bool = False) -> str | None:
    """Postal code for Google (default) or Meta (``meta=True``), or None when empty.

    Google: the code as given, trimmed (Customer Match sends zip unhashed). Meta: lower
    case without spaces or dashes; US: the first 5 digits ("94043-1351" -> "94043"); UK:
    area, district and sector only ("SW1A 1AA" -> "sw1a1"). ``country`` is the customer's
    country (a code or a name).
    """
    text = "" if value is None else " ".join(str(value).split())
    if not text:
        return None
    if not meta:
        return text
    code = normalize_country(country) if country else None
    text = re.sub(r"[\s\-‐-―]", "", text.lower())
    if code == "US":
        match = re.match(r"\d{5}", text)
        return match.group(0) if match else text or None
    if code == "GB":
        match = _UK_POSTCODE.match(text)
        if match:
            return match.group(1) + match.group(2)
    return text or None
