"""Synthetic shop data (catalogue, customers, behaviour events) for scale tests and benchmarks.

Real public data is small (the UCI file has 4,372 customers) and has no consents, languages
or sensitive attributes. This module writes any size of plausible data, deterministically
from a seed, in the exact layouts Tailor's importer maps without help:

- ``products.csv``: ``sku,title,description,category,brand,price,in_stock,url,image_url``
- ``customers.csv``: ``customer_id,email,name,country,language,consent_email,consent_sms,
  consent_push,consent_ads,gender,age``
- ``events.csv.gz`` (or ``events.csv``): ``customer_id,sku,kind,quantity,value,occurred_at,
  source``; kinds ``view``, ``cart``, ``purchase``, ``return``; ``occurred_at`` is
  ``YYYY-MM-DD HH:MM:SS`` in UTC; ``value`` is unit price × quantity (empty for views; a
  return's value is the positive amount refunded); ``source`` is the session id
  (``S000123``) for views and carts, the order id (``O000123``) for purchases and returns.

Realism, each piece there so that a downstream feature has something true to find:

- Popularity is Zipf-like: product weight ∝ rank ** -ZIPF_EXPONENT (0.8) over a random
  ranking, so a few products take a large share of views and purchases (with 20,000
  products the top 1 % get about 30 % of purchases; the UCI file's top 1 % get 10 %):
  something for popularity baselines and popularity-bias metrics to measure.
- Categories form a 2-level tree (8 top levels × 3–6 leaves, ``"Home > Kitchen"``). Each
  leaf has a log-normal price distribution (leaf median, top-level spread), so price bands
  differ by category. Titles are adjective + material + noun from per-category vocabularies
  (``"Rustic Oak Serving Board"``); descriptions are 1–3 sentences naming the brand, colour,
  material, size and a feature, so the copy generator has attributes to cite. Five brands
  per top level, also Zipf-weighted.
- Customers have heterogeneous activity (log-normal session counts: about a third of
  customers have no events at all, the median active one has ~10 events, the busiest
  several hundred) and a buying propensity (beta). Each prefers 1–3 leaf categories;
  85 % of sessions stay in a preferred leaf, so collaborative filtering has structure to
  find. Preferences lean by gender and age band (a mild, known skew for fairness tests).
- Sessions are funnels: every product seen gets a view; some are carted; in buying
  sessions most carted products are bought at one checkout time, sharing an order id
  (baskets of ~2.8 lines), so views > carts > purchases (about 71 / 17 / 11 %). Carts in
  browsing sessions are abandoned. A product appears at most once per order, so no two
  rows share customer, sku, kind, time and source. Quantities are geometric (mostly 1).
- Repeat buying: 70 % of customers have 1–3 staple products from consumable leaves
  (coffee, skincare, pet food…); each buying session re-orders each staple with
  P_STAPLE_LINE (cart + purchase with no view, like a "buy again" button), in larger
  quantities. About a fifth of the lines in customers' second and later orders re-buy a
  product they bought before.
- Returns: 0.3–12 % of purchase lines by category (fashion highest; 3–4 % overall),
  2–30 days after the purchase, same customer, sku and order id, quantity up to the
  quantity bought. Returns that would fall after the window are not written.
- Countries with languages and time zones (UK/en, Germany/de, France/fr, US/en, Spain/es,
  Netherlands/nl, Italy/it, China/zh, Poland/pl, Sweden/sv; weighted); 8 % of customers
  outside English-speaking countries prefer English. Emails ``c000123@example.com``, names
  from small per-language lists (with accents and CJK characters, to exercise encodings),
  consents drawn per channel, gender (``F``/``M``/``X``) and age (18–85).
- Time: a weekly cycle (Sunday high, Saturday low), a November/December peak (Black Friday
  to Cyber Monday highest, a dip over Christmas), January sales, a summer dip, 15 % growth
  over the window, and an hourly profile in each customer's local time (stored as UTC).

Output is streamed: customers are processed in blocks, each block's events (at most
EVENTS_PER_BLOCK per pass) are generated with vectorised numpy, formatted to bytes without
a Python object per row, and written before the next, so memory stays flat however many
events are asked for (1,000,000 events for 100,000 customers: about 4 s and 160 MB on two
cores). Rows are sorted by customer and time within each block (pass), not globally. The
number of event rows equals ``events`` exactly (whole sessions are dropped at random, and
at most one session is cut short).
Same arguments and seed give byte-identical files (gzip header has no timestamp).
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PRODUCTS_HEADER = (
    "sku",
    "title",
    "description",
    "category",
    "brand",
    "price",
    "in_stock",
    "url",
    "image_url",
)
CUSTOMERS_HEADER = (
    "customer_id",
    "email",
    "name",
    "country",
    "language",
    "consent_email",
    "consent_sms",
    "consent_push",
    "consent_ads",
    "gender",
    "age",
)
EVENTS_HEADER = ("customer_id", "sku", "kind", "quantity", "value", "occurred_at", "source")
EVENT_KINDS = ("view", "cart", "purchase", "return")
DEFAULT_START = date(2024, 1, 1)  # fixed, so the same seed gives the same bytes on any day

ZIPF_EXPONENT = 0.8  # top 1 % of 20k products get about a quarter of purchases
EVENTS_PER_BLOCK = 200_000
CUSTOMERS_PER_BLOCK = 100_000
CUSTOMER_UNIT = 10_000  # customers per random stream (see _make_customers)
ACTIVITY_SIGMA = 1.1  # log-normal spread of sessions per customer
BUY_PROPENSITY = (2.0, 7.0)  # beta(a, b): share of a customer's sessions that aim to buy
VIEWS_BROWSING = 2.5  # extra products seen (Poisson) beyond the first, browsing session
VIEWS_BUYING = 3.5  # same, buying session
P_SESSION_PREFERRED = 0.85  # session's main leaf is one of the customer's preferred leaves
P_SLOT_SESSION_LEAF = 0.75  # a product seen comes from the session's main leaf…
P_SLOT_PREFERRED = 0.6  # …else from a preferred leaf with this chance, else anywhere
P_CART_BROWSING = 0.08
P_CART_BUYING = 0.55
P_BUY_CARTED = 0.85
P_STAPLE_LINE = 0.55  # a buying session re-orders each of the customer's staples
P_IN_STOCK = 0.93
CONSENT_RATES = {"email": 0.62, "sms": 0.24, "push": 0.35, "ads": 0.45}
GROWTH = 0.15

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class _Leaf:
    name: str
    nouns: tuple[str, ...]
    median_price: float
    weight: float = 1.0  # share of the catalogue (and so of traffic)
    consumable: bool = False
    materials: tuple[str, ...] = ()  # overrides the top level's materials


@dataclass(frozen=True)
class _Top:
    name: str
    adjectives: tuple[str, ...]
    materials: tuple[str, ...]
    brands: tuple[str, ...]
    sizes: tuple[str, ...]
    features: tuple[str, ...]
    sentences: tuple[str, ...]  # first always used, then 0–2 of the others
    price_sigma: float
    return_rate: float
    leaves: tuple[_Leaf, ...]


def _w(words: str) -> tuple[str, ...]:
    """Vocabulary lists are written "a|b|c" to keep the tables below readable."""
    return tuple(words.split("|"))


COLOURS = _w("white|black|navy|charcoal|sage green|terracotta|sand|burgundy|ivory|olive")

CATEGORIES: tuple[_Top, ...] = (
    _Top(
        "Home",
        price_sigma=0.55,
        return_rate=0.03,
        adjectives=_w("Rustic|Modern|Classic|Nordic|Minimal|Vintage|Handmade|Cosy"),
        materials=_w("Oak|Walnut|Bamboo|Ceramic|Stoneware|Linen|Cotton|Glass|Marble"),
        brands=_w("Hearthwood|Nordlys|Casa Verde|Maison Clé|Oakline"),
        sizes=_w("20 x 30 cm|Ø 25 cm|40 x 60 cm|1.5 litres|a generous 50 x 70 cm"),
        features=_w("Easy to clean|Sustainably sourced|Hand finished|Made to last for years"),
        sentences=_w(
            "{title} by {brand}, made of {material} with a {colour} finish."
            "|Measures {size}.|{feature}."
        ),
        leaves=(
            _Leaf(
                "Kitchen",
                median_price=24,
                weight=1.3,
                nouns=_w(
                    "Serving Board|Chopping Board|Mixing Bowl|Storage Jar|Utensil Set|Knife Block"
                ),
            ),
            _Leaf(
                "Dining",
                median_price=28,
                nouns=_w("Dinner Plate Set|Mug|Salad Bowl|Carafe|Table Runner"),
            ),
            _Leaf(
                "Bedding",
                median_price=45,
                nouns=_w("Duvet Cover|Pillowcase Set|Throw|Fitted Sheet"),
            ),
            _Leaf(
                "Bath",
                median_price=22,
                nouns=_w("Towel Set|Bath Mat|Soap Dispenser|Laundry Basket"),
            ),
            _Leaf(
                "Decor",
                median_price=30,
                weight=1.2,
                nouns=_w("Vase|Candle Holder|Picture Frame|Wall Mirror|Cushion"),
            ),
            _Leaf(
                "Cleaning",
                median_price=8,
                weight=0.7,
                consumable=True,
                nouns=_w("Dish Brush|Cleaning Cloths|Scrubbing Sponges|Surface Spray"),
                materials=_w("Microfibre|Coconut Fibre|Lemon|Eucalyptus|Plant-Based"),
            ),
        ),
    ),
    _Top(
        "Fashion",
        price_sigma=0.5,
        return_rate=0.12,
        adjectives=_w("Slim|Relaxed|Classic|Oversized|Cropped|Tailored|Everyday|Vintage"),
        materials=_w("Cotton|Linen|Wool|Denim|Silk|Cashmere|Organic Cotton|Merino"),
        brands=_w("Atelier Nord|Urban Thread|Linea|Marlow & Co|Selvedge"),
        sizes=_w("XS to XL|S to XXL|XS to XXL|one size"),
        features=_w("Machine washable at 30 °C|Ethically made|True to size|Free returns"),
        sentences=_w(
            "{title} by {brand}, cut from {material} in {colour}."
            "|Available in sizes {size}.|{feature}."
        ),
        leaves=(
            _Leaf(
                "Women's Clothing",
                median_price=49,
                weight=1.8,
                nouns=_w("Dress|Blouse|Skirt|Cardigan|Jumpsuit|Trousers"),
            ),
            _Leaf(
                "Men's Clothing",
                median_price=45,
                weight=1.5,
                nouns=_w("Shirt|Chinos|Jumper|Polo Shirt|T-Shirt"),
            ),
            _Leaf(
                "Shoes",
                median_price=75,
                weight=1.2,
                nouns=_w("Sneakers|Loafers|Ankle Boots|Sandals|Trainers"),
                materials=_w("Leather|Suede|Canvas|Knit|Vegan Leather"),
            ),
            _Leaf(
                "Bags",
                median_price=55,
                weight=0.8,
                nouns=_w("Tote Bag|Backpack|Crossbody Bag|Weekender|Wallet"),
                materials=_w("Leather|Canvas|Nylon|Suede"),
            ),
            _Leaf(
                "Accessories",
                median_price=25,
                weight=0.8,
                nouns=_w("Scarf|Belt|Beanie|Gloves|Cap"),
                materials=_w("Wool|Cashmere|Leather|Cotton|Silk"),
            ),
        ),
    ),
    _Top(
        "Electronics",
        price_sigma=0.7,
        return_rate=0.06,
        adjectives=_w("Wireless|Portable|Smart|Compact|Pro|Ultra-Slim|Rugged"),
        materials=_w("Aluminium|Matte|Carbon|Glass|Recycled Plastic|Silicone"),
        brands=_w("Voltix|Sonora|Kyro|Pixelwave|Ampere"),
        sizes=_w("10 x 6 x 2 cm|14 x 9 x 1 cm|32 x 22 x 2 cm|a compact 150 g"),
        features=_w("2-year warranty|USB-C charging|Up to 30 hours of battery life|Bluetooth 5.3"),
        sentences=_w("{title} by {brand}, finished in {colour}.|{feature}.|Dimensions: {size}."),
        leaves=(
            _Leaf(
                "Audio", median_price=79, nouns=_w("Headphones|Earbuds|Bluetooth Speaker|Soundbar")
            ),
            _Leaf(
                "Phones & Accessories",
                median_price=19,
                weight=1.2,
                nouns=_w("Phone Case|Charger|Power Bank|Screen Protector|Charging Cable"),
            ),
            _Leaf(
                "Computing",
                median_price=59,
                nouns=_w("Keyboard|Mouse|Laptop Stand|Monitor|USB Hub"),
            ),
            _Leaf(
                "Smart Home",
                median_price=39,
                weight=0.8,
                nouns=_w("Smart Plug|Smart Bulb|Security Camera|Thermostat"),
            ),
        ),
    ),
    _Top(
        "Beauty",
        price_sigma=0.5,
        return_rate=0.01,
        adjectives=_w("Hydrating|Gentle|Nourishing|Radiant|Soothing|Daily|Intensive"),
        materials=_w("Rose|Argan Oil|Aloe Vera|Shea Butter|Vitamin C|Green Tea|Lavender"),
        brands=_w("Lumière|Botanica|Pure Petal|Velvet Dew|Aurum"),
        sizes=_w("30 ml|50 ml|100 ml|200 ml|15 g"),
        features=_w(
            "Dermatologically tested|Vegan and cruelty-free|Suitable for sensitive skin"
            "|Free from parabens"
        ),
        sentences=_w("{title} by {brand}, with {material}.|Contents: {size}.|{feature}."),
        leaves=(
            _Leaf(
                "Skincare",
                median_price=24,
                weight=1.2,
                consumable=True,
                nouns=_w("Face Serum|Day Cream|Cleanser|Face Mask|Eye Cream"),
            ),
            _Leaf(
                "Haircare",
                median_price=14,
                weight=0.9,
                consumable=True,
                nouns=_w("Shampoo|Conditioner|Hair Oil|Hair Mask"),
            ),
            _Leaf(
                "Makeup",
                median_price=18,
                consumable=True,
                nouns=_w("Lipstick|Mascara|Foundation|Blush|Eyeliner"),
            ),
            _Leaf(
                "Fragrance",
                median_price=55,
                weight=0.6,
                nouns=_w("Eau de Parfum|Body Mist|Eau de Toilette"),
            ),
        ),
    ),
    _Top(
        "Sports & Outdoors",
        price_sigma=0.7,
        return_rate=0.06,
        adjectives=_w("Lightweight|Pro|Trail|Breathable|Durable|Adjustable|All-Weather"),
        materials=_w("Nylon|Carbon|Steel|Mesh|Recycled Polyester|Foam|Aluminium"),
        brands=_w("Peakform|Trailhead|Stride|Summit Gear|Velo"),
        sizes=_w("S, M and L|one size|adjustable|70 x 180 cm|a packed 35 x 15 cm"),
        features=_w("Tested in the Alps|Water resistant|Packs down small|Lifetime guarantee"),
        sentences=_w(
            "{title} by {brand}, built from {material} in {colour}.|Size: {size}.|{feature}."
        ),
        leaves=(
            _Leaf(
                "Fitness",
                median_price=35,
                nouns=_w("Yoga Mat|Dumbbell Set|Resistance Bands|Kettlebell|Foam Roller"),
            ),
            _Leaf(
                "Cycling",
                median_price=40,
                nouns=_w("Bike Helmet|Bike Light|Cycling Jersey|Bike Lock|Water Bottle"),
            ),
            _Leaf(
                "Camping",
                median_price=65,
                nouns=_w("Tent|Sleeping Bag|Camping Stove|Headlamp|Backpack"),
            ),
            _Leaf(
                "Running",
                median_price=50,
                nouns=_w("Running Shoes|Running Jacket|Running Belt|Sports Socks"),
            ),
        ),
    ),
    _Top(
        "Toys & Games",
        price_sigma=0.6,
        return_rate=0.02,
        adjectives=_w("Colourful|Classic|Educational|Giant|Mini|Creative|Deluxe"),
        materials=_w("Wooden|Plush|Cardboard|Recycled Plastic|Felt|Magnetic"),
        brands=_w("Tinker Town|Playwise|Bright Blocks|Wooly|Puzzlewood"),
        sizes=_w("ages 3 and up|ages 6 and up|ages 8 and up|the whole family"),
        features=_w(
            "Tested to EU safety standards|No batteries needed|Great for family game night"
        ),
        sentences=_w("{title} by {brand}, in {colour}.|Recommended for {size}.|{feature}."),
        leaves=(
            _Leaf(
                "Games & Puzzles",
                median_price=22,
                nouns=_w("Jigsaw Puzzle|Board Game|Card Game|Memory Game"),
            ),
            _Leaf(
                "Building Sets",
                median_price=35,
                nouns=_w("Building Blocks|Marble Run|Construction Kit|Train Set"),
            ),
            _Leaf(
                "Soft Toys",
                median_price=18,
                weight=0.8,
                nouns=_w("Teddy Bear|Bunny|Dinosaur|Unicorn"),
            ),
            _Leaf(
                "Outdoor Play",
                median_price=30,
                weight=0.7,
                nouns=_w("Kite|Sandpit Set|Play Tent|Balance Bike"),
            ),
        ),
    ),
    _Top(
        "Grocery",
        price_sigma=0.4,
        return_rate=0.003,
        adjectives=_w("Organic|Fairtrade|Premium|Artisan|Classic|Gourmet|Everyday"),
        materials=_w("Vanilla|Hazelnut|Sea Salt|Dark Chocolate|Honey|Lemon|Ginger"),
        brands=_w("Good Harvest|Bean & Leaf|Pantry Co|Little Orchard|Golden Mill"),
        sizes=_w("250 g|500 g|1 kg|20 pods|750 ml"),
        features=_w("Vegan|Recyclable packaging|No artificial flavours|Gluten free"),
        sentences=_w(
            "{title} by {brand}, with a note of {material}.|Pack size: {size}.|{feature}."
        ),
        leaves=(
            _Leaf(
                "Coffee & Tea",
                median_price=9,
                consumable=True,
                nouns=_w("Coffee Beans|Ground Coffee|Green Tea|Herbal Tea|Coffee Pods"),
            ),
            _Leaf(
                "Snacks",
                median_price=4,
                consumable=True,
                nouns=_w("Crisps|Granola Bars|Cookies|Trail Mix|Popcorn"),
            ),
            _Leaf(
                "Pantry",
                median_price=6,
                weight=0.8,
                consumable=True,
                nouns=_w("Muesli|Peanut Butter|Olive Oil|Pasta Sauce|Jam"),
            ),
        ),
    ),
    _Top(
        "Pets",
        price_sigma=0.55,
        return_rate=0.01,
        adjectives=_w("Natural|Grain-Free|Cosy|Durable|Premium|Playful"),
        materials=_w("Chicken|Salmon|Lamb|Turkey|Duck"),
        brands=_w("Happy Paws|Wagtail|Purrfect|Pet Pantry|Fetch & Co"),
        sizes=_w("small|medium|large|2 kg|6 kg"),
        features=_w("Vet approved|Made in Europe|Machine washable|Loved by picky pets"),
        sentences=_w("{title} by {brand}, made with {material}.|Size: {size}.|{feature}."),
        leaves=(
            _Leaf(
                "Pet Food",
                median_price=18,
                weight=1.2,
                consumable=True,
                nouns=_w("Dog Food|Cat Food|Dog Treats|Cat Treats"),
            ),
            _Leaf(
                "Pet Toys",
                median_price=9,
                weight=0.8,
                nouns=_w("Chew Toy|Cat Teaser|Tug Toy|Fetch Ball"),
                materials=_w("Rope|Rubber|Plush|Felt"),
            ),
            _Leaf(
                "Pet Beds",
                median_price=45,
                weight=0.6,
                nouns=_w("Dog Bed|Cat Cushion|Pet Blanket|Donut Bed"),
                materials=_w("Fleece|Memory Foam|Cotton|Faux Fur"),
            ),
        ),
    ),
)

# Per top level (order of CATEGORIES): how gender and age band tilt category preference.
_GENDER_TILT = {
    "F": (1.1, 1.4, 0.7, 2.0, 0.8, 1.0, 1.0, 1.0),
    "M": (0.9, 0.8, 1.6, 0.4, 1.4, 1.0, 1.0, 1.0),
    "X": (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0),
}
_AGE_BANDS = (30, 45, 60)  # <30, 30–44, 45–59, 60+
_AGE_TILT = (
    (0.7, 1.3, 1.3, 1.1, 1.2, 0.7, 1.0, 0.9),
    (1.0, 1.0, 1.0, 1.0, 1.0, 1.6, 1.0, 1.0),
    (1.2, 0.9, 0.9, 1.0, 0.9, 0.9, 1.1, 1.1),
    (1.4, 0.8, 0.7, 0.9, 0.8, 0.9, 1.2, 1.3),
)
GENDERS = ("F", "M", "X")
GENDER_WEIGHTS = (0.51, 0.46, 0.03)

# country, language, UTC offset (hours, no DST), weight
COUNTRIES: tuple[tuple[str, str, int, float], ...] = (
    ("United Kingdom", "en", 0, 0.24),
    ("Germany", "de", 1, 0.17),
    ("France", "fr", 1, 0.12),
    ("United States", "en", -5, 0.13),
    ("Spain", "es", 1, 0.08),
    ("Netherlands", "nl", 1, 0.06),
    ("Italy", "it", 1, 0.06),
    ("China", "zh", 8, 0.05),
    ("Poland", "pl", 1, 0.04),
    ("Sweden", "sv", 1, 0.05),
)
P_PREFERS_ENGLISH = 0.08

# language: (female first names, male first names, last names)
NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "en": (
        ("Olivia", "Emma", "Amelia", "Sophie", "Grace", "Emily"),
        ("Oliver", "James", "Harry", "Jack", "William", "Thomas"),
        ("Smith", "Jones", "Taylor", "Brown", "Wilson", "Davies", "Evans", "Johnson"),
    ),
    "de": (
        ("Anna", "Lena", "Lea", "Julia", "Katharina", "Sophie"),
        ("Lukas", "Jonas", "Felix", "Maximilian", "Paul", "Jürgen"),
        ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker"),
    ),
    "fr": (
        ("Chloé", "Léa", "Manon", "Camille", "Inès", "Émilie"),
        ("Lucas", "Hugo", "Louis", "Gabriel", "Théo", "François"),
        ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Lefèvre"),
    ),
    "es": (
        ("Lucía", "María", "Paula", "Sofía", "Carmen", "Elena"),
        ("Hugo", "Pablo", "Alejandro", "Daniel", "José", "Álvaro"),
        ("García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez"),
    ),
    "nl": (
        ("Emma", "Julia", "Sanne", "Lotte", "Fleur", "Anouk"),
        ("Daan", "Sem", "Lucas", "Bram", "Thijs", "Jeroen"),
        ("de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Visser"),
    ),
    "it": (
        ("Giulia", "Sofia", "Aurora", "Francesca", "Chiara", "Alessia"),
        ("Leonardo", "Francesco", "Lorenzo", "Alessandro", "Matteo", "Niccolò"),
        ("Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci"),
    ),
    "zh": (
        ("芳", "娜", "敏", "静", "丽", "婷"),
        ("伟", "强", "磊", "洋", "勇", "杰"),
        ("王", "李", "张", "刘", "陈", "杨", "黄", "赵"),
    ),
    "pl": (
        ("Zuzanna", "Julia", "Maja", "Zofia", "Hanna", "Agnieszka"),
        ("Antoni", "Jakub", "Jan", "Szymon", "Franciszek", "Łukasz"),
        ("Nowak", "Wójcik", "Kowalczyk", "Mazur", "Krawczyk", "Kaczmarek", "Zając", "Król"),
    ),
    "sv": (
        ("Alice", "Maja", "Elsa", "Astrid", "Ebba", "Saga"),
        ("William", "Hugo", "Liam", "Lucas", "Oscar", "Björn"),
        ("Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Olsson"),
    ),
}

# Local-time shopping profile, hour 0..23: night trough, lunch bump, evening peak.
HOUR_PROFILE = (
    0.30, 0.15, 0.08, 0.05, 0.05, 0.08, 0.20, 0.45, 0.70, 0.85, 0.90, 0.95,
    1.10, 1.05, 0.95, 0.90, 0.90, 0.95, 1.05, 1.25, 1.40, 1.35, 1.00, 0.60,
)  # fmt: skip
WEEKDAY_PROFILE = (1.05, 1.0, 1.0, 1.0, 0.92, 0.85, 1.2)  # Monday..Sunday


@dataclass
class _Catalog:
    """Latent product arrays the event generator needs (one entry per product)."""

    leaf: np.ndarray  # int16 leaf index
    price: np.ndarray  # float64, 2 decimals
    popularity: np.ndarray  # float64 Zipf weight
    consumable: np.ndarray  # bool
    return_rate: np.ndarray  # float64
    by_leaf: np.ndarray  # product indices sorted by leaf
    leaf_cdf: np.ndarray  # leaf index + within-leaf cumulative popularity, aligned to by_leaf
    leaf_end: np.ndarray  # exclusive end of each leaf's run in by_leaf
    leaf_traffic: np.ndarray  # normalised popularity mass per leaf (0 for empty leaves)
    staple_pool: np.ndarray  # consumable product indices
    staple_p: np.ndarray  # their normalised popularity

    def leaf_by_traffic(self, u: np.ndarray) -> np.ndarray:
        """Map uniforms in [0, 1) to leaves by traffic share; empty leaves are never hit."""
        cum = np.cumsum(self.leaf_traffic)
        leaves = np.searchsorted(cum, u * cum[-1], side="right")
        return np.minimum(leaves, np.flatnonzero(self.leaf_traffic > 0)[-1])

    def pick(self, leaves: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Pick one product per entry from the given (non-empty) leaves, by popularity."""
        pos = np.searchsorted(self.leaf_cdf, leaves + u, side="right")
        pos = np.minimum(pos, self.leaf_end[leaves] - 1)
        return self.by_leaf[pos]


@dataclass
class _Customers:
    """Latent customer arrays (one entry per customer)."""

    activity: np.ndarray  # float64, relative number of sessions
    propensity: np.ndarray  # float32, chance a session aims to buy
    utc_offset: np.ndarray  # int8 hours
    prefs: np.ndarray  # int16 (n, 3) preferred leaves
    n_prefs: np.ndarray  # int8 1..3
    staples: np.ndarray  # int32 (n, 3) staple products
    n_staples: np.ndarray  # int8 0..3


def _leaves() -> tuple[list[tuple[_Top, _Leaf]], np.ndarray]:
    pairs = [(top, leaf) for top in CATEGORIES for leaf in top.leaves]
    top_of_leaf = np.array([CATEGORIES.index(top) for top, _ in pairs], dtype=np.int16)
    return pairs, top_of_leaf


def _id_width(n: int) -> int:
    return max(6, len(str(n)))


def _lower_words(text: str) -> str:
    """'Argan Oil' -> 'argan oil', 'Vitamin C' -> 'vitamin C' (single letters kept)."""
    return " ".join(w if len(w) == 1 else w.lower() for w in text.split(" "))


def _make_catalog(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, _Catalog]:
    pairs, top_of_leaf = _leaves()
    n_leaves = len(pairs)
    weights = np.array([leaf.weight for _, leaf in pairs])
    weights /= weights.sum()
    # Every leaf gets a product when there are enough, then the rest by leaf weight.
    first = np.arange(min(n, n_leaves))
    leaf = np.concatenate([first, rng.choice(n_leaves, size=n - len(first), p=weights)])
    leaf = rng.permutation(leaf).astype(np.int16)

    medians = np.array([leaf_.median_price for _, leaf_ in pairs])
    sigmas = np.array([top.price_sigma for top, _ in pairs])
    raw = medians[leaf] * np.exp(sigmas[leaf] * rng.standard_normal(n))
    price = np.maximum(np.round(raw * 2) / 2 - 0.01, 0.99).round(2)  # x.49 / x.99
    popularity = (rng.permutation(n) + 1.0) ** -ZIPF_EXPONENT
    in_stock = rng.random(n) < P_IN_STOCK

    # Text: draw every random index up front (vectorised), assemble strings per product.
    r_adj, r_mat, r_noun, r_col, r_size, r_feat, r_brand = rng.integers(0, 1 << 30, (7, n))
    n_sentences = rng.choice(3, size=n, p=(0.25, 0.45, 0.30))
    swap = rng.random(n) < 0.5
    brand_p = np.arange(1, 6) ** -1.0
    brand_idx = np.searchsorted(np.cumsum(brand_p / brand_p.sum()), rng.random(n), side="right")
    width = _id_width(n)
    skus = np.array([f"P{i + 1:0{width}d}" for i in range(n)], dtype=object)
    titles, descriptions, categories, brands = [], [], [], []
    for i in range(n):
        top, lf = pairs[leaf[i]]
        materials = lf.materials or top.materials
        adjective = top.adjectives[r_adj[i] % len(top.adjectives)]
        material = materials[r_mat[i] % len(materials)]
        noun = lf.nouns[r_noun[i] % len(lf.nouns)]
        brand = top.brands[min(brand_idx[i], len(top.brands) - 1)]
        title = f"{adjective} {material} {noun}"
        slots = {
            "title": title,
            "brand": brand,
            "material": _lower_words(material),
            "colour": COLOURS[r_col[i] % len(COLOURS)],
            "size": top.sizes[r_size[i] % len(top.sizes)],
            "feature": top.features[r_feat[i] % len(top.features)],
        }
        extra = top.sentences[1:] if not swap[i] else top.sentences[:0:-1]
        chosen = (top.sentences[0], *extra[: n_sentences[i]])
        titles.append(title)
        descriptions.append(" ".join(s.format(**slots) for s in chosen))
        categories.append(f"{top.name} > {lf.name}")
        brands.append(brand)
    frame = pd.DataFrame(
        {
            "sku": skus,
            "title": titles,
            "description": descriptions,
            "category": categories,
            "brand": brands,
            "price": price,
            "in_stock": np.where(in_stock, "true", "false"),
            "url": [f"https://shop.example.com/p/{s}" for s in skus],
            "image_url": [f"https://shop.example.com/img/{s}.jpg" for s in skus],
        },
        columns=list(PRODUCTS_HEADER),
    )

    by_leaf = np.argsort(leaf, kind="stable")
    sorted_leaf = leaf[by_leaf].astype(np.float64)
    mass = np.bincount(leaf, weights=popularity, minlength=n_leaves)
    cum = np.cumsum(popularity[by_leaf])
    before = np.concatenate([[0.0], np.cumsum(mass)[:-1]])
    safe_mass = np.where(mass > 0, mass, 1.0)
    li = leaf[by_leaf]
    leaf_cdf = sorted_leaf + (cum - before[li]) / safe_mass[li]
    leaf_end = np.searchsorted(leaf[by_leaf], np.arange(n_leaves), side="right")
    leaf_cdf[leaf_end[mass > 0] - 1] = np.flatnonzero(mass > 0) + 1.0
    consumable_leaf = np.array([lf.consumable for _, lf in pairs])
    consumable = consumable_leaf[leaf]
    pool = np.flatnonzero(consumable)
    pool_p = popularity[pool] / popularity[pool].sum() if len(pool) else popularity[pool]
    return_rates = np.array([top.return_rate for top, _ in pairs])
    catalog = _Catalog(
        leaf=leaf,
        price=price,
        popularity=popularity,
        consumable=consumable,
        return_rate=return_rates[leaf],
        by_leaf=by_leaf,
        leaf_cdf=leaf_cdf,
        leaf_end=leaf_end,
        leaf_traffic=mass / mass.sum(),
        staple_pool=pool,
        staple_p=pool_p,
    )
    return frame, catalog


def _make_customers(
    start: int, stop: int, width: int, catalog: _Catalog, seed: int
) -> tuple[pd.DataFrame, _Customers]:
    """Customers ``start..stop-1``: the rows to write and the latent arrays events need.

    Each unit of CUSTOMER_UNIT customers has its own random stream, so customers.csv does
    not depend on how many events are asked for (only on the seed and customer count).
    """
    frames, latents = [], []
    for lo in range(start, stop, CUSTOMER_UNIT):
        rng = np.random.default_rng([seed, 1, lo // CUSTOMER_UNIT])
        frame, latent = _customer_unit(lo, min(lo + CUSTOMER_UNIT, stop), width, catalog, rng)
        frames.append(frame)
        latents.append(latent)
    merged = _Customers(
        *(np.concatenate([getattr(x, f.name) for x in latents]) for f in fields(_Customers))
    )
    return pd.concat(frames, ignore_index=True), merged


def _customer_unit(
    start: int, stop: int, width: int, catalog: _Catalog, rng: np.random.Generator
) -> tuple[pd.DataFrame, _Customers]:
    n = stop - start
    numbers = np.arange(start + 1, stop + 1)
    ids = np.array([f"C{i:0{width}d}" for i in numbers], dtype=object)
    emails = [f"c{i:0{width}d}@example.com" for i in numbers]

    c_weights = np.array([c[3] for c in COUNTRIES])
    country = rng.choice(len(COUNTRIES), size=n, p=c_weights / c_weights.sum())
    native = np.array([c[1] for c in COUNTRIES], dtype=object)[country]
    language = np.where(
        (native != "en") & (rng.random(n) < P_PREFERS_ENGLISH), "en", native
    ).astype(object)
    gender = rng.choice(3, size=n, p=GENDER_WEIGHTS)
    age = np.clip(np.round(rng.normal(41, 14, n)), 18, 85).astype(np.int16)
    r_first, r_last = rng.integers(0, 1 << 30, (2, n))
    names = []
    for i in range(n):
        female, male, last = NAMES[native[i]]
        pool = female if gender[i] == 0 else male if gender[i] == 1 else (female + male)
        first_name = pool[r_first[i] % len(pool)]
        last_name = last[r_last[i] % len(last)]
        names.append(last_name + first_name if native[i] == "zh" else f"{first_name} {last_name}")
    consents = {
        f"consent_{k}": np.where(rng.random(n) < p, "true", "false")
        for k, p in CONSENT_RATES.items()
    }
    frame = pd.DataFrame(
        {
            "customer_id": ids,
            "email": emails,
            "name": names,
            "country": np.array([c[0] for c in COUNTRIES], dtype=object)[country],
            "language": language,
            **consents,
            "gender": np.array(GENDERS, dtype=object)[gender],
            "age": age,
        },
        columns=list(CUSTOMERS_HEADER),
    )

    # Preferences: Gumbel top-k over leaf weights tilted by gender and age band.
    _, top_of_leaf = _leaves()
    band = np.searchsorted(np.array(_AGE_BANDS), age, side="right")
    tilt = np.array([_GENDER_TILT[g] for g in GENDERS])[gender] * np.array(_AGE_TILT)[band]
    with np.errstate(divide="ignore"):
        logw = np.log(catalog.leaf_traffic)[None, :] + np.log(tilt[:, top_of_leaf])
    keys = logw + rng.gumbel(size=logw.shape)
    prefs = np.argsort(-keys, axis=1)[:, :3].astype(np.int16)
    n_nonempty = int((catalog.leaf_traffic > 0).sum())
    n_prefs = np.minimum(rng.choice([1, 2, 3], size=n, p=(0.3, 0.4, 0.3)), n_nonempty)

    n_staples = rng.choice(4, size=n, p=(0.3, 0.3, 0.25, 0.15)).astype(np.int8)
    if len(catalog.staple_pool):
        staples = catalog.staple_pool[
            np.searchsorted(np.cumsum(catalog.staple_p), rng.random((n, 3)), side="right").clip(
                max=len(catalog.staple_pool) - 1
            )
        ].astype(np.int32)
    else:
        staples = np.zeros((n, 3), dtype=np.int32)
        n_staples[:] = 0
    latent = _Customers(
        activity=rng.lognormal(0.0, ACTIVITY_SIGMA, n),
        propensity=rng.beta(*BUY_PROPENSITY, n).astype(np.float32),
        utc_offset=np.array([c[2] for c in COUNTRIES], dtype=np.int8)[country],
        prefs=prefs,
        n_prefs=n_prefs.astype(np.int8),
        staples=staples,
        n_staples=n_staples,
    )
    return frame, latent


def _day_weights(start: date, days: int) -> np.ndarray:
    """Relative traffic per day: weekly cycle × season × growth."""
    weights = np.empty(days)
    for d in range(days):
        day = start + timedelta(days=d)
        nov1 = date(day.year, 11, 1)
        black_friday = nov1 + timedelta(days=(4 - nov1.weekday()) % 7 + 21)
        season = 1.0
        if day.month == 1 and day.day <= 15:
            season = 1.15  # January sales
        elif day.month in (1, 2):
            season = 0.9
        elif day.month in (7, 8):
            season = 0.88
        elif black_friday <= day <= black_friday + timedelta(days=3):
            season = 2.6  # Black Friday to Cyber Monday
        elif day.month == 11:
            season = 1.3 if day < black_friday else 1.7
        elif day.month == 12:
            season = (
                1.7 if day.day <= 18 else 1.3 if day.day <= 23 else 0.6 if day.day <= 26 else 1.2
            )
        weights[d] = WEEKDAY_PROFILE[day.weekday()] * season * (1 + GROWTH * d / max(days, 1))
    return weights / weights.sum()


def _sessions(
    cust: _Customers,
    catalog: _Catalog,
    n_sessions: int,
    *,
    window: tuple[int, int, np.ndarray],
    rng: np.random.Generator,
) -> tuple[dict[str, np.ndarray], int]:
    """Generate about ``n_sessions`` sessions for a customer block; return its events.

    Event arrays are in session order; ``session`` is local to this call. Each session's
    events are strictly increasing in time up to checkout; a session's purchases share the
    checkout time; returns come 2–30 days later. Also returns the number of sessions.
    """
    t_start, t_end, day_p = window
    lam = n_sessions * cust.activity / cust.activity.sum()
    per_customer = rng.poisson(lam)
    s_cust = np.repeat(np.arange(len(lam), dtype=np.int32), per_customer)
    n_s = len(s_cust)
    if n_s == 0:  # small blocks can draw no session at all; the caller asks again
        empty = np.zeros(0, np.int64)
        keys = ("session", "customer", "product", "kind", "quantity", "time", "seq")
        return dict.fromkeys(keys, empty), 0
    buying = rng.random(n_s) < cust.propensity[s_cust]

    day = rng.choice(len(day_p), size=n_s, p=day_p)
    hour = rng.choice(24, size=n_s, p=np.array(HOUR_PROFILE) / sum(HOUR_PROFILE))
    t0 = (
        t_start
        + day.astype(np.int64) * 86_400
        + hour * 3_600
        + rng.integers(0, 3_600, n_s)
        - cust.utc_offset[s_cust].astype(np.int64) * 3_600
    )
    t0 = np.clip(t0, t_start, t_end - 3_600)

    def preferred(owner: np.ndarray) -> np.ndarray:
        k = (rng.random(len(owner)) * cust.n_prefs[owner]).astype(np.int64)
        return cust.prefs[owner, k].astype(np.int64)

    def anywhere(size: int) -> np.ndarray:
        return catalog.leaf_by_traffic(rng.random(size))

    s_leaf = np.where(rng.random(n_s) < P_SESSION_PREFERRED, preferred(s_cust), anywhere(n_s))
    n_browse = 1 + rng.poisson(np.where(buying, VIEWS_BUYING, VIEWS_BROWSING))

    # Browse slots (one per product seen), then staple re-orders placed first in a session.
    b_sess = np.repeat(np.arange(n_s, dtype=np.int64), n_browse)
    r = rng.random(len(b_sess))
    b_leaf = np.where(
        r < P_SLOT_SESSION_LEAF,
        s_leaf[b_sess],
        np.where(
            r < P_SLOT_SESSION_LEAF + (1 - P_SLOT_SESSION_LEAF) * P_SLOT_PREFERRED,
            preferred(s_cust[b_sess]),
            anywhere(len(b_sess)),
        ),
    )
    b_prod = catalog.pick(b_leaf, rng.random(len(b_sess)))
    # Each staple of the customer is re-ordered in a buying session with P_STAPLE_LINE.
    staple_draw = rng.random((n_s, cust.staples.shape[1]))
    has_staple = (
        buying[:, None]
        & (np.arange(cust.staples.shape[1])[None, :] < cust.n_staples[s_cust][:, None])
        & (staple_draw < P_STAPLE_LINE)
    )
    st_sess, st_k = np.nonzero(has_staple)
    st_prod = cust.staples[s_cust[st_sess], st_k]

    slot_sess = np.concatenate([st_sess, b_sess])
    slot_prod = np.concatenate([st_prod, b_prod]).astype(np.int64)
    direct = np.concatenate([np.ones(len(st_sess), bool), np.zeros(len(b_sess), bool)])
    order = np.argsort(slot_sess, kind="stable")
    slot_sess, slot_prod, direct = slot_sess[order], slot_prod[order], direct[order]
    n_slots = len(slot_sess)

    # A product seen twice in a session is only viewed again; it is carted at most once.
    _, first_idx = np.unique(slot_sess * len(catalog.leaf) + slot_prod, return_index=True)
    first = np.zeros(n_slots, bool)
    first[first_idx] = True
    direct &= first
    slot_buying = buying[slot_sess]
    cart = first & (
        direct | (rng.random(n_slots) < np.where(slot_buying, P_CART_BUYING, P_CART_BROWSING))
    )
    purchase = cart & slot_buying & (direct | (rng.random(n_slots) < P_BUY_CARTED))
    ret = purchase & (rng.random(n_slots) < catalog.return_rate[slot_prod])
    staple_qty = rng.geometric(0.5, n_slots)
    qty = np.where(catalog.consumable[slot_prod], staple_qty, rng.geometric(0.8, n_slots))
    ret_qty = 1 + (rng.random(n_slots) * qty).astype(np.int64)

    # Events: one row per True cell of [view, cart, purchase, return], slot-major.
    mask = np.stack([~direct, cart, purchase, ret], axis=1)
    ev_slot, ev_kind = np.nonzero(mask)
    ev_sess = slot_sess[ev_slot]

    # Times. Browse events (views, carts) step 1 s + Exp(45 s) apart within the session.
    browse = ev_kind <= 1
    bs = ev_sess[browse]
    gaps = 1 + rng.exponential(45.0, len(bs)).astype(np.int64)
    cum = np.cumsum(gaps)
    starts = np.flatnonzero(np.r_[True, bs[1:] != bs[:-1]])
    run = np.diff(np.r_[starts, len(bs)])
    offset = cum - np.repeat(cum[starts] - gaps[starts], run)
    span = np.zeros(n_s, np.int64)
    span[bs[starts + run - 1]] = offset[starts + run - 1]
    checkout = span + 30 + rng.exponential(90.0, n_s).astype(np.int64)
    overflow = np.maximum(0, t0 + checkout - (t_end - 1))
    t0 = np.maximum(t0 - overflow, t_start)

    ev_time = np.empty(len(ev_slot), np.int64)
    ev_time[browse] = t0[bs] + offset
    buy = ev_kind == 2
    ev_time[buy] = t0[ev_sess[buy]] + checkout[ev_sess[buy]]
    back = ev_kind == 3
    delay = (2 + rng.gamma(2.0, 4.0, int(back.sum())).clip(max=28)) * 86_400
    ev_time[back] = t0[ev_sess[back]] + checkout[ev_sess[back]] + delay.astype(np.int64)
    keep = ev_time < t_end  # a return after the window has not happened yet

    prod = slot_prod[ev_slot]
    q = np.where(ev_kind == 3, ret_qty[ev_slot], np.where(ev_kind == 0, 1, qty[ev_slot]))
    events = {
        "session": ev_sess[keep],
        "customer": s_cust[ev_sess[keep]],
        "product": prod[keep],
        "kind": ev_kind[keep].astype(np.int8),
        "quantity": q[keep],
        "time": ev_time[keep],
        "seq": np.arange(len(ev_slot))[keep],
    }
    return events, n_s


def _block_events(
    cust: _Customers,
    catalog: _Catalog,
    target: int,
    *,
    window: tuple[int, int, np.ndarray],
    per_session: float,
    rng: np.random.Generator,
) -> tuple[dict[str, np.ndarray], float]:
    """Exactly ``target`` events for one customer block, sorted by customer and time.

    Over-generates sessions, then keeps a random subset of whole sessions and a time-ordered
    prefix of one more, so the count is exact without biasing any period or customer.
    Returns the events and the observed events per session (to size the next block).
    """
    parts: list[dict[str, np.ndarray]] = []
    made, sessions = 0, 0
    while made < target:
        want = max(1, math.ceil((target - made) * 1.1 / per_session) + 1)
        part, n_new = _sessions(cust, catalog, want, window=window, rng=rng)
        part["session"] = part["session"] + sessions
        sessions += n_new
        made += len(part["session"])
        parts.append(part)
    ev = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    observed = made / max(sessions, 1)

    # Rank of each event inside its session, in time order.
    by_session = np.lexsort((ev["seq"], ev["time"], ev["session"]))
    s_sorted = ev["session"][by_session]
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    run = np.diff(np.r_[starts, len(s_sorted)])
    rank = np.empty(len(s_sorted), np.int64)
    rank[by_session] = np.arange(len(s_sorted)) - np.repeat(starts, run)

    counts = np.bincount(ev["session"], minlength=sessions)
    perm = rng.permutation(sessions)
    cum = np.cumsum(counts[perm])
    k = int(np.searchsorted(cum, target))  # first position where cum >= target
    keep_session = np.zeros(sessions, bool)
    keep_session[perm[:k]] = True
    partial = perm[k]
    room = target - (int(cum[k - 1]) if k else 0)
    keep = keep_session[ev["session"]] | ((ev["session"] == partial) & (rank < room))
    ev = {key: v[keep] for key, v in ev.items()}
    final = np.lexsort((ev["seq"], ev["time"], ev["customer"]))
    return {key: v[final] for key, v in ev.items()}, observed


def _source_numbers(
    ev: dict[str, np.ndarray], next_session: int, next_order: int
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Number sessions (views, carts) and orders (purchases, returns) in file order.

    Returns each event's number, whether it is an order number, and the next free numbers.
    """
    session = ev["session"]
    uniq, first_pos = np.unique(session, return_index=True)
    in_file_order = uniq[np.argsort(first_pos, kind="stable")]
    size = int(uniq.max()) + 1 if len(uniq) else 0
    s_num = np.zeros(size, np.int64)
    s_num[in_file_order] = next_session + np.arange(len(uniq))
    is_order = ev["kind"] >= 2
    ordering = np.zeros(size, bool)
    ordering[session[is_order]] = True
    o_num = np.zeros(size, np.int64)
    o_num[in_file_order] = next_order + np.cumsum(ordering[in_file_order]) - 1
    number = np.where(is_order, o_num[session], s_num[session])
    n_orders = int(ordering.sum())
    return number, is_order, next_session + len(uniq), next_order + n_orders


# Events are formatted as bytes with numpy (no Python object per row): every field is a
# fixed-width block of ASCII codes in one uint8 matrix, NUL where a field is shorter, and
# the NULs are dropped at the end.
_TWO = np.array([[48 + i // 10, 48 + i % 10] for i in range(100)], np.uint8)
_KINDS = np.array([k.encode() for k in EVENT_KINDS], "S8").view(np.uint8).reshape(-1, 8)


def _digits(x: np.ndarray, width: int | None = None, *, pad: bool = False) -> np.ndarray:
    """Decimal digits of non-negative ints as an (n, width) uint8 matrix.

    Leading zeros become NUL (dropped later) unless ``pad``; the last digit always stays.
    """
    x = np.asarray(x, np.int64)
    if width is None:
        width = len(str(int(x.max()))) if len(x) else 1
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    out = ((x[:, None] // powers) % 10 + 48).astype(np.uint8)
    if not pad:
        out[(x[:, None] < powers) & (powers > 1)] = 0
    return out


def _labels(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded ids like C000123 as an (n, 1 + width) uint8 matrix."""
    head = np.full((len(numbers), 1), ord(prefix), np.uint8)
    return np.hstack([head, _digits(numbers, width, pad=True)])


def _date_table(t_start: int, days: int) -> np.ndarray:
    """``YYYY-MM-DD`` for every day of the window, as a (days, 10) uint8 matrix."""
    first = datetime.fromtimestamp(t_start, UTC).date()
    text = [(first + timedelta(days=d)).isoformat().encode() for d in range(days)]
    return np.array(text, "S10").view(np.uint8).reshape(days, 10)


def _event_bytes(
    *,
    customer: np.ndarray,
    sku: np.ndarray,
    kind: np.ndarray,
    quantity: np.ndarray,
    cents: np.ndarray,
    seconds: np.ndarray,
    dates: np.ndarray,
    source_is_order: np.ndarray,
    source_number: np.ndarray,
    source_width: int,
) -> bytes:
    """CSV lines for one chunk; ``customer`` and ``sku`` are already (n, w) byte matrices."""
    n = len(kind)

    def const(char: str) -> np.ndarray:
        return np.full((n, 1), ord(char), np.uint8)

    comma = const(",")
    value = np.hstack([_digits(cents // 100), const("."), _TWO[cents % 100]])
    value[kind == 0] = 0  # views carry no value
    day, tod = np.divmod(seconds, 86_400)
    letter = np.where(source_is_order, ord("O"), ord("S")).astype(np.uint8)[:, None]
    matrix = np.hstack(
        [
            customer, comma, sku, comma, _KINDS[kind], comma, _digits(quantity), comma,
            value, comma, dates[day], const(" "), _TWO[tod // 3_600], const(":"),
            _TWO[tod // 60 % 60], const(":"), _TWO[tod % 60], comma,
            letter, _digits(source_number, source_width, pad=True), const("\n"),
        ]
    )  # fmt: skip
    return matrix.tobytes().replace(b"\0", b"")


def _open_binary(stack: ExitStack, path: Path, *, compress: bool) -> Any:
    raw = stack.enter_context(path.open("wb"))
    if compress:
        # No name and mtime 0 in the gzip header: same arguments, same bytes. Level 1,
        # because a higher level would take longer than generating the data.
        raw = stack.enter_context(
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=1, mtime=0)
        )
    return raw


def _write(frame: pd.DataFrame, handle: io.TextIOBase, *, header: bool) -> None:
    frame.to_csv(
        handle,
        header=header,
        index=False,
        lineterminator="\n",
        quoting=csv.QUOTE_MINIMAL,
        float_format="%.2f",
        na_rep="",
    )


def generate(
    out_dir: Path,
    *,
    customers: int,
    products: int,
    events: int,
    seed: int,
    start: date | None = None,
    days: int = 365,
    gzip_events: bool = True,
    on_progress: Progress | None = None,
) -> dict[str, Any]:
    """Write products.csv, customers.csv and events.csv[.gz] into ``out_dir``.

    Deterministic for the same arguments. Returns row counts, event counts per kind,
    orders, sessions and the three paths. ``on_progress(done, total)`` is called with
    event rows written.
    """
    if seed < 0:
        raise ValueError("seed must be >= 0")
    if customers < 1 or products < 1:
        raise ValueError("customers and products must be at least 1")
    if events < 0 or days < 1:
        raise ValueError("events must be >= 0 and days >= 1")
    start = start or DEFAULT_START
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    catalog_rng = np.random.default_rng([seed, 0])
    event_rng = np.random.default_rng([seed, 2])
    report = on_progress or (lambda done, total: None)
    report(0, events)

    products_path = out_dir / "products.csv"
    frame, catalog = _make_catalog(products, catalog_rng)
    with products_path.open("w", encoding="utf-8", newline="") as f:
        _write(frame, f, header=True)
    del frame

    # Customer blocks (whole units) double as event blocks, so latent arrays and events live
    # one block at a time; a block with too many events for one pass gets several passes.
    units = math.ceil(customers / CUSTOMER_UNIT)
    n_blocks = max(math.ceil(customers / CUSTOMERS_PER_BLOCK), math.ceil(events / EVENTS_PER_BLOCK))
    per_block = math.ceil(units / min(n_blocks, units))
    bounds = np.minimum(np.arange(0, units + per_block, per_block) * CUSTOMER_UNIT, customers)
    bounds = np.unique(bounds)
    n_blocks = len(bounds) - 1
    c_width = _id_width(customers)
    # Split events across blocks by customer count (activity is i.i.d. across blocks).
    share = np.diff(bounds) * events / customers
    targets = np.floor(share).astype(np.int64)
    targets[np.argsort(-(share - targets), kind="stable")[: events - int(targets.sum())]] += 1

    t_start = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp())
    window = (t_start, t_start + days * 86_400, _day_weights(start, days))
    src_width = _id_width(events)
    customers_path = out_dir / "customers.csv"
    events_path = out_dir / ("events.csv.gz" if gzip_events else "events.csv")
    sku_table = _labels("P", np.arange(1, products + 1), _id_width(products))
    price_cents = np.round(catalog.price * 100).astype(np.int64)
    dates = _date_table(t_start, days)
    kinds = np.zeros(len(EVENT_KINDS), np.int64)
    next_session = next_order = 1
    per_session = 5.0
    written = 0
    with ExitStack() as stack:
        c_out = stack.enter_context(customers_path.open("w", encoding="utf-8", newline=""))
        e_out = _open_binary(stack, events_path, compress=gzip_events)
        e_out.write((",".join(EVENTS_HEADER) + "\n").encode())
        for b in range(n_blocks):
            lo, hi = int(bounds[b]), int(bounds[b + 1])
            c_frame, latent = _make_customers(lo, hi, c_width, catalog, seed)
            id_table = _labels("C", np.arange(lo + 1, hi + 1), c_width)
            _write(c_frame, c_out, header=b == 0)
            del c_frame
            n_pass = math.ceil(targets[b] / EVENTS_PER_BLOCK)
            for part in np.diff(np.linspace(0, targets[b], n_pass + 1).round().astype(np.int64)):
                ev, per_session = _block_events(
                    latent,
                    catalog,
                    int(part),
                    window=window,
                    per_session=per_session,
                    rng=event_rng,
                )
                number, is_order, next_session, next_order = _source_numbers(
                    ev, next_session, next_order
                )
                kind = ev["kind"]
                e_out.write(
                    _event_bytes(
                        customer=id_table[ev["customer"]],
                        sku=sku_table[ev["product"]],
                        kind=kind,
                        quantity=ev["quantity"],
                        cents=price_cents[ev["product"]] * ev["quantity"],
                        seconds=ev["time"] - t_start,
                        dates=dates,
                        source_is_order=is_order,
                        source_number=number,
                        source_width=src_width,
                    )
                )
                kinds += np.bincount(kind, minlength=len(EVENT_KINDS))
                written += len(kind)
                del ev, number, is_order
                report(written, events)
    if written != events:  # pragma: no cover - guarded by construction
        raise RuntimeError(f"wrote {written} events, expected {events}")
    return {
        "products": products,
        "customers": customers,
        "events": written,
        "kinds": dict(zip(EVENT_KINDS, kinds.tolist(), strict=True)),
        "sessions": next_session - 1,
        "orders": next_order - 1,
        "products_path": products_path,
        "customers_path": customers_path,
        "events_path": events_path,
    }
