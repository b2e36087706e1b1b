"""Plantillas en español (tuteo, salvo el tono premium e informativo)."""

SEP = " "
QUOTES = ("«", "»")
LIST_AND = "y"

FRAMES: dict[str, dict[str, list[str]]] = {
    "greet": {
        "*": ["Hola, {first}:"],
        "friendly": ["¡Hola, {first}!", "Hola de nuevo, {first}:"],
        "premium": ["Buenos días, {first}:", "Buenas tardes, {first}:"],
        "playful": ["¡Hey, {first}!", "¡Hola, {first}!"],
        "informative": ["Buenos días, {first}:"],
    },
    "greet_anon": {
        "*": ["Hola:"],
        "friendly": ["¡Hola!"],
        "premium": ["Buenos días:"],
        "playful": ["¡Hey!"],
        "urgent": ["¡Hola!"],
        "informative": ["Buenos días:"],
    },
    "hook": {
        "friendly": [
            "Hemos encontrado algo para ti.",
            "Creemos que esto te va a gustar.",
            "Mira lo que hemos elegido para ti.",
            "Pensamos en ti al ver esto.",
        ],
        "premium": [
            "Hemos seleccionado algo especial para usted.",
            "Una elección refinada, hecha con cuidado.",
            "Algunas cosas merecen una segunda mirada.",
            "Hemos guardado esta pieza para usted.",
        ],
        "urgent": [
            "Ahora es el momento.",
            "No dejes pasar esto.",
            "El tiempo corre.",
            "Date prisa.",
        ],
        "playful": [
            "¿Te apetece un capricho?",
            "¡Mira lo que hemos encontrado!",
            "Tu próximo favorito puede estar aquí.",
            "¡Sorpresa! Tenemos algo para ti.",
        ],
        "informative": [
            "Estos son los datos de un producto elegido para usted.",
            "Aquí tiene un breve resumen.",
            "Esto es lo que debe saber.",
        ],
    },
    "for_you": {
        "*": [
            "Te gusta {category}, así que lo hemos elegido.",
            "Es de {category}, una sección que te gusta.",
            "Una elección de {category}, solo para ti.",
        ],
    },
    "product": {
        "*": ["Descubre {name}.", "Te presentamos {name}.", "Echa un vistazo a {name}."],
        "premium": ["Le presentamos {name}."],
        "informative": ["El producto: {name}."],
    },
    "product_price": {
        "*": [
            "{name} cuesta {price}.",
            "Consigue {name} por {price}.",
            "Descubre {name}, por {price}.",
            "Precio de {name}: {price}.",
            "Por {price}, {name} te espera.",
        ],
        "premium": ["{name} se ofrece por {price}."],
    },
    "point": {
        "*": [
            "Lo mejor: {point}.",
            "Un detalle que nos gusta: {point}.",
            "Lo que destaca: {point}.",
            "A tener en cuenta: {point}.",
            "Bueno saberlo: {point}.",
        ],
        "premium": ["Un detalle refinado: {point}."],
        "informative": ["Característica: {point}."],
    },
    "quote": {
        "*": [
            "Una clienta escribió: {quote}",
            "De nuestras opiniones: {quote}",
            "Una opinión de cliente: {quote}",
        ],
    },
    "rating": {
        "*": [
            "Los clientes le dan {rating} estrellas.",
            "Valorado con {rating} estrellas en {count} opiniones.",
            "{count} opiniones, {rating} estrellas de media.",
        ],
    },
    "occasion": {
        "*": [
            "Justo a tiempo para {occasion}.",
            "Una buena idea para {occasion}.",
            "Piensa en ello para {occasion}.",
            "¿Listo para {occasion}?",
        ],
    },
    "urgency_stock": {
        "*": [
            "Solo quedan {stock} en stock.",
            "Quedan {stock}, date prisa.",
            "Pocas unidades: quedan {stock}.",
        ],
    },
    "urgency_date": {
        "*": [
            "{occasion} es el {date}.",
            "Apunta la fecha: {occasion} es el {date}.",
            "Planifica: {occasion} cae el {date}.",
            "{occasion} termina el {date}.",
        ],
    },
    "close": {
        "friendly": ["Échale un vistazo hoy.", "Esperamos que te encante.", "Ven a verlo."],
        "premium": ["Le invitamos a descubrirlo.", "Descúbralo con calma."],
        "urgent": ["Pídelo ahora.", "No esperes demasiado.", "Consíguelo hoy."],
        "playful": ["¡Venga, echa un vistazo!", "¡Date un capricho!", "Un clic y listo."],
        "informative": [
            "Todos los detalles están en línea.",
            "Más información en la página del producto.",
            "Consulte todos los detalles en nuestra web.",
        ],
    },
    "signoff": {
        "friendly": ["Un saludo,\n{sender}", "Hasta pronto,\n{sender}", "Un abrazo,\n{sender}"],
        "premium": ["Atentamente,\n{sender}", "Cordiales saludos,\n{sender}"],
        "urgent": ["Saludos,\n{sender}", "Gracias,\n{sender}"],
        "playful": ["¡Felices compras!\n{sender}", "Hasta pronto,\n{sender}"],
        "informative": ["Atentamente,\n{sender}", "Saludos cordiales,\n{sender}"],
    },
    "signoff_anon": {
        "friendly": ["Un saludo de todo el equipo.", "Hasta pronto."],
        "premium": ["Atentamente.", "Gracias por su tiempo."],
        "urgent": ["Gracias por leernos."],
        "playful": ["¡Felices compras!"],
        "informative": ["Gracias por su atención."],
    },
    "cta": {
        "friendly": ["Ver ahora", "Saber más", "Echa un vistazo"],
        "premium": ["Descubrir", "Explorar", "Ver detalles"],
        "urgent": ["Comprar ahora", "Pedir hoy", "Lo quiero"],
        "playful": ["Date un capricho", "A ver", "Vamos"],
        "informative": ["Ver detalles", "Saber más", "Leer más"],
    },
    "subject": {
        "friendly": [
            "{first}, lo hemos elegido para ti",
            "Elegido para ti: {name}",
            "Esto te puede gustar: {name}",
            "Un detalle para ti, {first}",
        ],
        "premium": [
            "{first}, una elección refinada",
            "Le presentamos {name}",
            "Seleccionado para usted: {name}",
        ],
        "urgent": [
            "{first}, no te pierdas {name}",
            "Solo quedan {stock}: {name}",
            "No esperes: {name}",
            "{occasion} está cerca",
        ],
        "playful": [
            "{first}, esto te llama",
            "Mira lo que hemos encontrado",
            "¿Tu próximo favorito? {name}",
        ],
        "informative": ["{name}: los detalles", "Todo sobre {name}", "{name} por {price}"],
        "*": ["Idea para {occasion}: {name}", "Para {occasion}: {name}"],
    },
    "push_title": {
        "friendly": ["{first}, esto es para ti", "Elegido para ti"],
        "premium": ["Seleccionado para usted", "Una elección refinada"],
        "urgent": ["Solo quedan {stock}", "No te lo pierdas"],
        "playful": ["¡Psst, {first}!", "¿Un capricho?"],
        "informative": ["Detalles del producto", "Todo sobre {name}"],
        "*": ["{name}"],
    },
    "headline": {
        "friendly": ["Elegido para ti", "Échale un vistazo"],
        "premium": ["Una elección refinada", "Elegido con cuidado"],
        "urgent": ["Solo quedan {stock}", "No te lo pierdas", "Pídelo hoy"],
        "playful": ["Date un capricho", "¿Tu nuevo favorito?"],
        "informative": ["Todos los detalles", "Saber más"],
        "*": [
            "{name}",
            "Por {price}",
            "Descubre {category}",
            "Descubre {brand}",
            "Ideas para {occasion}",
            "{rating} estrellas",
        ],
    },
    "sms_hook": {
        "*": ["{first}, esto es para ti:", "Hola {first}!", "Elegido para ti:"],
        "urgent": ["{first}, date prisa:"],
    },
    "price": {"*": ["Precio: {price}.", "Disponible por {price}.", "Cuesta {price}."]},
    "intro": {
        "*": [
            "{name} forma parte de nuestra gama {category}.",
            "Te presentamos {name}, de nuestra gama {category}.",
            "{name}, de {brand}.",
            "Descubre {name}.",
        ],
    },
}

ATTR: dict[str, list[str]] = {
    "material": ["Material: {value}.", "Hecho de {value}."],
    "color": ["Color: {value}.", "Disponible en {value}."],
    "fit": ["Corte: {value}."],
    "size": ["Talla: {value}."],
    "pattern": ["Estampado: {value}."],
    "style": ["Estilo: {value}."],
    "origin": ["Hecho en {value}.", "Origen: {value}."],
    "*": ["{label}: {value}."],
}
