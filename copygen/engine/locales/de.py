"""Deutsche Vorlagen (du-Form für freundlich/verspielt, Sie-Form für premium/informativ)."""

SEP = " "
QUOTES = ("„", "“")
LIST_AND = "und"

FRAMES: dict[str, dict[str, list[str]]] = {
    "greet": {
        "*": ["Hallo {first},"],
        "friendly": ["Hi {first},", "Hallo {first}!"],
        "premium": ["Guten Tag {first},", "Schönen guten Tag, {first},"],
        "urgent": ["Hallo {first},", "Hi {first},"],
        "playful": ["Hey {first}!", "Hallo {first}!"],
        "informative": ["Guten Tag {first},"],
    },
    "greet_anon": {
        "*": ["Hallo,"],
        "friendly": ["Hallo zusammen,", "Hi,"],
        "premium": ["Guten Tag,"],
        "playful": ["Hey!", "Hallo!"],
        "urgent": ["Hallo zusammen,"],
        "informative": ["Guten Tag,"],
    },
    "hook": {
        "friendly": [
            "Wir haben etwas für dich gefunden.",
            "Das hier könnte dir gefallen.",
            "Schau mal, was wir für dich ausgesucht haben.",
            "Hier ist ein Tipp, der zu dir passt.",
            "Dabei haben wir an dich gedacht.",
        ],
        "premium": [
            "Wir haben etwas Besonderes für Sie ausgewählt.",
            "Eine feine Wahl, mit Sorgfalt getroffen.",
            "Manche Dinge verdienen einen zweiten Blick.",
            "Dieses Stück haben wir für Sie vorgemerkt.",
        ],
        "urgent": [
            "Jetzt ist der richtige Moment.",
            "Lass dir das nicht entgehen.",
            "Die Zeit ist knapp.",
            "Jetzt heißt es schnell sein.",
        ],
        "playful": [
            "Lust auf etwas Schönes?",
            "Schau mal, was wir gefunden haben!",
            "Dein neues Lieblingsstück wartet schon.",
            "Überraschung! Wir haben etwas für dich.",
        ],
        "informative": [
            "Hier sind die Fakten zu einem Produkt für Sie.",
            "Hier ist ein kurzer Überblick.",
            "Das sollten Sie wissen.",
            "Eine kurze Info zu einem unserer Produkte.",
        ],
    },
    "for_you": {
        "*": [
            "Du magst {category}, also haben wir das ausgewählt.",
            "Aus dem Bereich {category}, den du magst.",
            "Passend zu deinem Interesse an {category}.",
        ],
    },
    "product": {
        "*": ["Entdecke {name}.", "Das ist {name}.", "Wirf einen Blick auf {name}."],
        "premium": ["Wir stellen vor: {name}."],
        "informative": ["Das Produkt: {name}."],
    },
    "product_price": {
        "*": [
            "{name} gibt es für {price}.",
            "{name} kostet {price}.",
            "Für {price} gehört {name} dir.",
            "{name}, für {price}.",
            "Preis für {name}: {price}.",
        ],
        "premium": ["{name} erhalten Sie für {price}."],
        "informative": ["{name} kostet {price}."],
    },
    "point": {
        "*": [
            "Highlight: {point}.",
            "Ein Detail, das wir mögen: {point}.",
            "Das fällt auf: {point}.",
            "Besonders: {point}.",
            "Gut zu wissen: {point}.",
        ],
        "premium": ["Ein feines Detail: {point}."],
        "informative": ["Merkmal: {point}."],
    },
    "quote": {
        "*": [
            "Eine Kundin schreibt: {quote}",
            "Aus unseren Bewertungen: {quote}",
            "Eine Bewertung sagt: {quote}",
        ],
    },
    "rating": {
        "*": [
            "Kunden geben {rating} Sterne.",
            "Bewertet mit {rating} Sternen aus {count} Bewertungen.",
            "{count} Bewertungen, im Schnitt {rating} Sterne.",
        ],
    },
    "occasion": {
        "*": [
            "Genau richtig für {occasion}.",
            "Eine schöne Idee für {occasion}.",
            "Denk schon an {occasion}.",
            "Bereit für {occasion}?",
        ],
    },
    "urgency_stock": {
        "*": [
            "Nur noch {stock} auf Lager.",
            "Nur noch {stock} verfügbar, also schnell sein.",
            "Der Vorrat ist knapp: noch {stock} Stück.",
        ],
    },
    "urgency_date": {
        "*": [
            "{occasion} ist am {date}.",
            "Merk dir den Termin: {occasion} ist am {date}.",
            "Plane voraus: {occasion} ist am {date}.",
            "{occasion} endet am {date}.",
        ],
    },
    "close": {
        "friendly": ["Schau doch mal vorbei.", "Wir hoffen, es gefällt dir.", "Sieh es dir an."],
        "premium": ["Wir laden Sie ein, es zu entdecken.", "Nehmen Sie sich Zeit dafür."],
        "urgent": ["Jetzt bestellen.", "Warte nicht zu lange.", "Sichere es dir heute."],
        "playful": ["Na los, schau rein!", "Gönn dir was!", "Ein Klick genügt."],
        "informative": [
            "Alle Details finden Sie online.",
            "Mehr dazu auf der Produktseite.",
            "Weitere Infos finden Sie auf unserer Website.",
        ],
    },
    "signoff": {
        "friendly": ["Viele Grüße\n{sender}", "Liebe Grüße\n{sender}", "Bis bald\n{sender}"],
        "premium": ["Mit freundlichen Grüßen\n{sender}", "Herzliche Grüße\n{sender}"],
        "urgent": ["Viele Grüße\n{sender}", "Danke\n{sender}"],
        "playful": ["Viel Spaß beim Shoppen\n{sender}", "Bis bald\n{sender}"],
        "informative": ["Mit freundlichen Grüßen\n{sender}", "Beste Grüße\n{sender}"],
    },
    "signoff_anon": {
        "friendly": ["Viele Grüße von uns allen.", "Bis bald."],
        "premium": ["Mit freundlichen Grüßen.", "Vielen Dank für Ihre Zeit."],
        "urgent": ["Danke fürs Lesen."],
        "playful": ["Viel Spaß beim Shoppen!"],
        "informative": ["Vielen Dank für Ihr Interesse."],
    },
    "cta": {
        "friendly": ["Jetzt ansehen", "Mehr erfahren", "Schau es dir an"],
        "premium": ["Mehr entdecken", "Jetzt entdecken", "Details ansehen"],
        "urgent": ["Jetzt kaufen", "Jetzt bestellen", "Heute sichern"],
        "playful": ["Gönn dir was", "Zeig her", "Los geht's"],
        "informative": ["Details ansehen", "Mehr erfahren", "Zu den Details"],
    },
    "subject": {
        "friendly": [
            "{first}, das haben wir für dich",
            "Für dich ausgesucht: {name}",
            "Das könnte dir gefallen: {name}",
            "Eine Kleinigkeit für dich, {first}",
        ],
        "premium": [
            "{first}, eine feine Wahl für Sie",
            "Wir stellen vor: {name}",
            "Für Sie ausgewählt: {name}",
        ],
        "urgent": [
            "{first}, verpasse {name} nicht",
            "Nur noch {stock}: {name}",
            "Nicht warten: {name}",
            "{occasion} ist bald",
        ],
        "playful": [
            "{first}, das ruft nach dir",
            "Schau, was wir gefunden haben",
            "Dein neuer Liebling? {name}",
        ],
        "informative": ["{name}: die Details", "Alles über {name}", "{name} für {price}"],
        "*": ["Idee für {occasion}: {name}", "Zu {occasion}: {name}"],
    },
    "push_title": {
        "friendly": ["{first}, das ist für dich", "Für dich ausgesucht"],
        "premium": ["Für Sie ausgewählt", "Eine feine Wahl"],
        "urgent": ["Nur noch {stock} da", "Nicht verpassen"],
        "playful": ["Psst, {first}!", "Zeit für was Schönes"],
        "informative": ["Produktdetails", "Alles über {name}"],
        "*": ["{name}"],
    },
    "headline": {
        "friendly": ["Für dich ausgesucht", "Schau mal rein"],
        "premium": ["Eine feine Wahl", "Mit Sorgfalt gewählt"],
        "urgent": ["Nur noch {stock} da", "Nicht verpassen", "Heute bestellen"],
        "playful": ["Gönn dir was", "Dein neuer Liebling?"],
        "informative": ["Alle Details", "Mehr erfahren"],
        "*": [
            "{name}",
            "Für {price}",
            "{category} entdecken",
            "{brand} entdecken",
            "Ideen für {occasion}",
            "{rating} Sterne",
        ],
    },
    "sms_hook": {
        "*": ["{first}, das ist für dich:", "Hallo {first}!", "Für dich ausgesucht:"],
        "urgent": ["{first}, schnell sein:"],
    },
    "price": {"*": ["Preis: {price}.", "Für {price} erhältlich.", "Es kostet {price}."]},
    "intro": {
        "*": [
            "{name} gehört zu unserem Sortiment {category}.",
            "Das ist {name} aus dem Bereich {category}.",
            "{name} von {brand}.",
            "Das ist {name}.",
        ],
    },
}

ATTR: dict[str, list[str]] = {
    "material": ["Material: {value}.", "Hergestellt aus {value}."],
    "color": ["Farbe: {value}.", "Erhältlich in {value}."],
    "fit": ["Passform: {value}."],
    "size": ["Größe: {value}."],
    "pattern": ["Muster: {value}."],
    "style": ["Stil: {value}."],
    "origin": ["Hergestellt in {value}.", "Herkunft: {value}."],
    "*": ["{label}: {value}."],
}
