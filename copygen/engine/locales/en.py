"""English template grammar (short sentences, everyday words: Flesch reading ease ≥ 60)."""

SEP = " "
QUOTES = ("“", "”")
LIST_AND = "and"

FRAMES: dict[str, dict[str, list[str]]] = {
    "greet": {
        "*": ["Hi {first},", "Hello {first},"],
        "premium": ["Dear {first},", "Good day, {first},"],
        "playful": ["Hey {first}!", "Hi there, {first}!"],
        "friendly": ["Hey {first},", "Hi there, {first},"],
    },
    "greet_anon": {
        "*": ["Hello,"],
        "friendly": ["Hi there,", "Hi,"],
        "premium": ["Good day,"],
        "playful": ["Hey there!", "Hi there!"],
        "urgent": ["Hi there,"],
        "informative": ["Hi,"],
    },
    "hook": {
        "friendly": [
            "We think you will like this one.",
            "We found something for you.",
            "Here is a pick we think you will enjoy.",
            "This caught our eye, and we thought of you.",
            "Take a look at what we picked for you.",
            "Something nice is waiting for you.",
        ],
        "premium": [
            "We have chosen something special for you.",
            "A fine choice, picked with care.",
            "Some things are worth a closer look.",
            "We kept this one in mind for you.",
            "Good taste deserves good choices.",
        ],
        "urgent": [
            "Now is the time to take a look.",
            "Do not miss out on this one.",
            "Time is short, so act soon.",
            "Make your move soon.",
            "This is your moment.",
        ],
        "playful": [
            "Ready for a little treat?",
            "Look what we found!",
            "Your next favourite thing could be here.",
            "Good things come to those who click.",
            "Surprise! We picked something for you.",
        ],
        "informative": [
            "Here are the facts on a product we picked for you.",
            "Here is a quick overview.",
            "Here is what you need to know.",
            "A short note on one of our products.",
        ],
    },
    "for_you": {
        "*": [
            "You like {category}, so we chose this.",
            "It comes from {category}, a range you enjoy.",
            "Since you enjoy {category}, this one is for you.",
            "A {category} pick, just for you.",
        ],
    },
    "product": {
        "*": ["Meet the {name}.", "Have a look at the {name}.", "Discover the {name}."],
        "premium": ["Introducing the {name}."],
        "playful": ["Say hello to the {name}!"],
        "informative": ["This is the {name}."],
    },
    "product_price": {
        "*": [
            "The {name} is {price}.",
            "Get the {name} for {price}.",
            "The {name} costs {price}.",
            "Meet the {name}, at {price}.",
            "At {price}, the {name} is ready for you.",
        ],
        "premium": ["The {name} is offered at {price}."],
        "playful": ["The {name} can be yours for {price}."],
        "informative": ["Price of the {name}: {price}."],
    },
    "point": {
        "*": [
            "Highlights: {point}.",
            "A detail we like: {point}.",
            "What stands out: {point}.",
            "Key feature: {point}.",
            "Worth a mention: {point}.",
            "Look for this: {point}.",
        ],
        "premium": ["A fine detail: {point}."],
        "playful": ["Bonus points for this: {point}."],
        "informative": ["Feature: {point}.", "Good to know: {point}."],
    },
    "quote": {
        "*": [
            "One customer wrote: {quote}",
            "A reviewer said: {quote}",
            "In the words of a customer: {quote}",
            "From our reviews: {quote}",
        ],
    },
    "rating": {
        "*": [
            "Customers rate it {rating} stars.",
            "It has a {rating} star rating from {count} reviews.",
            "{count} reviews give it {rating} stars on average.",
        ],
    },
    "occasion": {
        "*": [
            "Just in time for {occasion}.",
            "A lovely idea for {occasion}.",
            "Think of it for {occasion}.",
            "Get ready for {occasion}.",
        ],
        "premium": ["A fitting choice for {occasion}."],
        "playful": ["{occasion} just got better."],
    },
    "urgency_stock": {
        "*": [
            "Only {stock} left in stock.",
            "Just {stock} left, so be quick.",
            "Stock is low: {stock} left.",
            "Hurry, just {stock} left.",
        ],
    },
    "urgency_date": {
        "*": [
            "{occasion} is on {date}.",
            "Mark your calendar: {occasion} is on {date}.",
            "Plan ahead: {occasion} falls on {date}.",
            "Do not miss it: {occasion} ends on {date}.",
        ],
    },
    "close": {
        "friendly": [
            "Take a look today.",
            "Have a look when you have a moment.",
            "We hope you love it.",
            "Come and see it for yourself.",
        ],
        "premium": [
            "We invite you to take a closer look.",
            "Discover it at your leisure.",
            "It is ready when you are.",
        ],
        "urgent": ["Order now.", "Do not wait too long.", "Get yours today."],
        "playful": [
            "Go on, take a peek!",
            "Why not treat yourself?",
            "Click and see for yourself.",
        ],
        "informative": [
            "See all the details online.",
            "Read more on the product page.",
            "Find the full details on our site.",
        ],
    },
    "signoff": {
        "friendly": [
            "Best wishes,\n{sender}",
            "Warm regards,\n{sender}",
            "See you soon,\n{sender}",
        ],
        "premium": ["Kind regards,\n{sender}", "With our compliments,\n{sender}"],
        "urgent": ["Best,\n{sender}", "Thanks,\n{sender}"],
        "playful": ["Happy shopping,\n{sender}", "Talk soon,\n{sender}"],
        "informative": ["Kind regards,\n{sender}", "Best regards,\n{sender}"],
    },
    "signoff_anon": {
        "friendly": ["Best wishes from all of us.", "See you soon."],
        "premium": ["With our kind regards.", "Thank you for your time."],
        "urgent": ["Thanks for reading."],
        "playful": ["Happy shopping!", "Have fun!"],
        "informative": ["Thank you for reading."],
    },
    "cta": {
        "friendly": ["Take a look", "See it now", "Find out more", "Have a look"],
        "premium": ["Discover more", "Explore now", "View details"],
        "urgent": ["Shop now", "Get it now", "Order today"],
        "playful": ["Treat yourself", "Show me", "Take a peek"],
        "informative": ["View details", "Learn more", "See the details"],
    },
    "subject": {
        "friendly": [
            "{first}, we picked this for you",
            "Picked for you: {name}",
            "You might like the {name}",
            "A little something for you, {first}",
            "{name}, picked for you",
            "We found this for you",
        ],
        "premium": [
            "{first}, a fine choice for you",
            "Introducing the {name}",
            "Selected for you: {name}",
            "A refined pick for you",
        ],
        "urgent": [
            "{first}, do not miss the {name}",
            "Only {stock} left: {name}",
            "Do not wait: {name}",
            "{occasion} is almost here",
        ],
        "playful": [
            "{first}, this one is calling you",
            "Look what we found for you",
            "Your next favourite? {name}",
            "Guess what we found, {first}",
        ],
        "informative": [
            "{name}: the details",
            "About the {name}",
            "{name} at {price}",
            "{first}, here are the details",
        ],
        "*": ["{occasion} idea: {name}", "For {occasion}: {name}"],
    },
    "push_title": {
        "friendly": ["{first}, this is for you", "Picked for you", "For you: {name}"],
        "premium": ["Selected for you", "A fine choice, {first}"],
        "urgent": ["Only {stock} left", "Do not miss out", "{occasion} is almost here"],
        "playful": ["Psst, {first}!", "Treat time!", "Look what we found"],
        "informative": ["Product details", "About the {name}"],
        "*": ["{name}"],
    },
    "headline": {
        "friendly": ["Picked for you", "Take a look today", "Made for your day"],
        "premium": ["A refined choice", "Chosen with care"],
        "urgent": ["Only {stock} left", "Do not miss out", "Order today"],
        "playful": ["Treat yourself", "Your next favourite?", "Go on, take a peek"],
        "informative": ["See the details", "Learn more online", "All the facts"],
        "*": [
            "{name}",
            "Yours for {price}",
            "Shop {category}",
            "{category} for you",
            "{brand} picks",
            "{occasion} ideas",
            "Rated {rating} stars",
        ],
    },
    "sms_hook": {
        "*": ["{first}, this is for you:", "Hi {first}!", "Picked for you:", "Hello {first},"],
        "urgent": ["{first}, be quick:"],
        "playful": ["Psst {first}!"],
    },
    "price": {
        "*": [
            "Price: {price}.",
            "Yours for {price}.",
            "It costs {price}.",
            "Available for {price}.",
        ]
    },
    "intro": {
        "*": [
            "The {name} is part of our {category} range.",
            "Meet the {name}, from our {category} range.",
            "The {name} by {brand}.",
            "This is the {name}.",
            "Discover the {name}.",
        ],
    },
}

ATTR: dict[str, list[str]] = {
    "material": ["Made of {value}.", "It is made from {value}.", "Material: {value}."],
    "color": ["Colour: {value}.", "It comes in {value}."],
    "fit": ["Fit: {value}.", "The fit is {value}."],
    "size": ["Size: {value}.", "Available size: {value}."],
    "pattern": ["Pattern: {value}."],
    "style": ["Style: {value}."],
    "origin": ["Made in {value}.", "Origin: {value}."],
    "*": ["{label}: {value}."],
}
