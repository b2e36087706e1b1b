"""Modèles français (tutoiement pour amical/ludique, vouvoiement ailleurs; espace insécable
avant « : », « ! » et « ? »)."""

SEP = " "
QUOTES = ("«\u00a0", "\u00a0»")
LIST_AND = "et"

FRAMES: dict[str, dict[str, list[str]]] = {
    "greet": {
        "*": ["Bonjour {first},"],
        "friendly": ["Salut {first},", "Coucou {first},"],
        "premium": ["Bien le bonjour {first},"],
        "playful": ["Coucou {first}\u00a0!", "Salut {first}\u00a0!"],
        "informative": ["Bonjour {first},"],
    },
    "greet_anon": {
        "*": ["Bonjour,"],
        "friendly": ["Salut,", "Bonjour à vous,"],
        "premium": ["Madame, Monsieur,"],
        "playful": ["Coucou\u00a0!"],
        "urgent": ["Bonjour à vous,"],
    },
    "hook": {
        "friendly": [
            "Nous avons trouvé quelque chose pour toi.",
            "Ceci pourrait te plaire.",
            "Regarde ce que nous avons choisi pour toi.",
            "Nous avons pensé à toi.",
        ],
        "premium": [
            "Nous avons sélectionné quelque chose de spécial pour vous.",
            "Un choix raffiné, fait avec soin.",
            "Certaines choses méritent un second regard.",
            "Nous avons gardé cette pièce pour vous.",
        ],
        "urgent": [
            "C'est le moment d'agir.",
            "Ne laissez pas passer ceci.",
            "Le temps presse.",
            "Il faut faire vite.",
        ],
        "playful": [
            "Envie d'un petit plaisir\u00a0?",
            "Regarde ce qu'on a trouvé\u00a0!",
            "Ton prochain coup de cœur est peut-être ici.",
            "Surprise\u00a0! On a choisi quelque chose pour toi.",
        ],
        "informative": [
            "Voici l'essentiel sur un produit choisi pour vous.",
            "Voici un bref aperçu.",
            "Voici ce qu'il faut savoir.",
        ],
    },
    "for_you": {
        "*": [
            "Choisi dans la catégorie {category}.",
            "Un coup de cœur de la catégorie {category}.",
            "Une idée de la catégorie {category}.",
        ],
    },
    "product": {
        "*": ["Découvrez {name}.", "Voici {name}.", "Jetez un œil à {name}."],
        "premium": ["Nous vous présentons {name}."],
        "informative": ["Le produit\u00a0: {name}."],
    },
    "product_price": {
        "*": [
            "{name} est à {price}.",
            "{name} coûte {price}.",
            "Découvrez {name}, à {price}.",
            "Prix de {name}\u00a0: {price}.",
            "À {price}, {name} vous attend.",
        ],
        "premium": ["{name} vous est proposé à {price}."],
    },
    "point": {
        "*": [
            "Point fort\u00a0: {point}.",
            "Un détail que nous aimons\u00a0: {point}.",
            "Ce qui ressort\u00a0: {point}.",
            "À noter\u00a0: {point}.",
            "Bon à savoir\u00a0: {point}.",
        ],
        "premium": ["Un détail raffiné\u00a0: {point}."],
        "informative": ["Caractéristique\u00a0: {point}."],
    },
    "quote": {
        "*": [
            "Une cliente écrit\u00a0: {quote}",
            "Extrait de nos avis\u00a0: {quote}",
            "Un avis client\u00a0: {quote}",
        ],
    },
    "rating": {
        "*": [
            "Les clients lui donnent {rating} étoiles.",
            "Noté {rating} étoiles sur {count} avis.",
            "{count} avis, {rating} étoiles en moyenne.",
        ],
    },
    "occasion": {
        "*": [
            "Juste à temps pour {occasion}.",
            "Une belle idée pour {occasion}.",
            "Pensez-y pour {occasion}.",
            "Prêt pour {occasion}\u00a0?",
        ],
    },
    "urgency_stock": {
        "*": [
            "Plus que {stock} en stock.",
            "Il n'en reste que {stock}, faites vite.",
            "Stock limité\u00a0: plus que {stock}.",
        ],
    },
    "urgency_date": {
        "*": [
            "{occasion}, c'est le {date}.",
            "Notez la date\u00a0: {occasion} tombe le {date}.",
            "Anticipez\u00a0: {occasion} est le {date}.",
            "{occasion} se termine le {date}.",
        ],
    },
    "close": {
        "friendly": ["Jette un œil dès aujourd'hui.", "On espère que ça te plaira.", "Viens voir."],
        "premium": ["Nous vous invitons à le découvrir.", "Prenez le temps de le découvrir."],
        "urgent": ["Commandez maintenant.", "N'attendez pas trop.", "Réservez-le dès aujourd'hui."],
        "playful": ["Allez, jette un œil\u00a0!", "Fais-toi plaisir\u00a0!", "Un clic suffit."],
        "informative": [
            "Tous les détails sont en ligne.",
            "Plus d'infos sur la page produit.",
            "Retrouvez tous les détails sur notre site.",
        ],
    },
    "signoff": {
        "friendly": ["À bientôt,\n{sender}", "Bien à toi,\n{sender}", "Amitiés,\n{sender}"],
        "premium": ["Bien cordialement,\n{sender}", "Avec nos salutations,\n{sender}"],
        "urgent": ["À très vite,\n{sender}", "Merci,\n{sender}"],
        "playful": ["Bon shopping,\n{sender}", "À plus,\n{sender}"],
        "informative": ["Cordialement,\n{sender}", "Bien cordialement,\n{sender}"],
    },
    "signoff_anon": {
        "friendly": ["À bientôt.", "Toute l'équipe vous salue."],
        "premium": ["Avec nos salutations distinguées.", "Merci de votre attention."],
        "urgent": ["Merci de votre lecture."],
        "playful": ["Bon shopping\u00a0!"],
        "informative": ["Merci de votre attention."],
    },
    "cta": {
        "friendly": ["Voir le produit", "En savoir plus", "Jeter un œil"],
        "premium": ["Découvrir", "Explorer", "Voir les détails"],
        "urgent": ["Acheter", "Commander", "J'en profite"],
        "playful": ["Je craque", "Fais-toi plaisir", "On y va"],
        "informative": ["Voir les détails", "En savoir plus", "Lire la suite"],
    },
    "subject": {
        "friendly": [
            "{first}, on a choisi ceci pour toi",
            "Choisi pour toi\u00a0: {name}",
            "Ceci pourrait te plaire\u00a0: {name}",
            "Une petite attention pour toi, {first}",
        ],
        "premium": [
            "{first}, un choix raffiné pour vous",
            "Nous vous présentons {name}",
            "Sélectionné pour vous\u00a0: {name}",
        ],
        "urgent": [
            "{first}, ne manquez pas {name}",
            "Plus que {stock}\u00a0: {name}",
            "N'attendez pas\u00a0: {name}",
            "{occasion} approche",
        ],
        "playful": [
            "{first}, ceci t'appelle",
            "Regarde ce qu'on a trouvé",
            "Ton prochain coup de cœur\u00a0? {name}",
        ],
        "informative": ["{name}\u00a0: les détails", "Tout sur {name}", "{name} à {price}"],
        "*": ["Idée pour {occasion}\u00a0: {name}", "Pour {occasion}\u00a0: {name}"],
    },
    "push_title": {
        "friendly": ["{first}, c'est pour toi", "Choisi pour toi"],
        "premium": ["Sélectionné pour vous", "Un choix raffiné"],
        "urgent": ["Plus que {stock}", "À ne pas manquer"],
        "playful": ["Psst, {first}\u00a0!", "Petit plaisir\u00a0?"],
        "informative": ["Détails du produit", "Tout sur {name}"],
        "*": ["{name}"],
    },
    "headline": {
        "friendly": ["Choisi pour vous", "Jetez un œil"],
        "premium": ["Un choix raffiné", "Choisi avec soin"],
        "urgent": ["Plus que {stock}", "À ne pas manquer", "Commandez vite"],
        "playful": ["Faites-vous plaisir", "Coup de cœur\u00a0?"],
        "informative": ["Tous les détails", "En savoir plus"],
        "*": [
            "{name}",
            "À {price}",
            "Univers {category}",
            "Découvrez {brand}",
            "Idées {occasion}",
            "{rating} étoiles",
        ],
    },
    "sms_hook": {
        "*": ["{first}, c'est pour toi:", "Bonjour {first}!", "Choisi pour toi:"],
        "urgent": ["{first}, vite:"],
    },
    "price": {"*": ["Prix\u00a0: {price}.", "Disponible à {price}.", "Il coûte {price}."]},
    "intro": {
        "*": [
            "{name} fait partie de notre gamme {category}.",
            "Voici {name}, de notre gamme {category}.",
            "{name}, par {brand}.",
            "Voici {name}.",
        ],
    },
}

ATTR: dict[str, list[str]] = {
    "material": ["Matière\u00a0: {value}.", "Fabriqué en {value}."],
    "color": ["Couleur\u00a0: {value}.", "Coloris\u00a0: {value}."],
    "fit": ["Coupe\u00a0: {value}."],
    "size": ["Taille\u00a0: {value}."],
    "pattern": ["Motif\u00a0: {value}."],
    "style": ["Style\u00a0: {value}."],
    "origin": ["Origine\u00a0: {value}."],
    "*": ["{label}\u00a0: {value}."],
}
