"""The vocabulary of the bundled benchmark and the texts written about it.

Three answer spaces (shapes, colours, numbers) are shared by all three task families on purpose:
an image of a shape or a number can then pull a text-only answer toward what it shows, which is
how an unrelated image interferes with a text question in real models.
"""

from __future__ import annotations

# Six shapes a small vision tower can tell apart at 96x96 (a hexagon or a diamond blurs into a
# circle or a square at that size).
SHAPES = ("circle", "square", "triangle", "star", "cross", "arrow")

# Vivid colours drawn in images (RGB); the background palette stays pale and grey so that the
# colour of an object is never the colour of its canvas.
COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "yellow": (240, 210, 20),
    "orange": (245, 130, 20),
    "purple": (130, 40, 170),
    "pink": (245, 120, 190),
    "brown": (120, 70, 30),
}
KB_COLOURS = tuple(COLOURS) + ("white", "black", "grey")

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve")

# Two true-sounding sentences per concept: the misleading text names a wrong option as the content
# of the picture and then talks about it ("related text").
CONCEPT_FACTS: dict[str, tuple[str, str]] = {
    "circle": ("A circle is round and has no corners.", "Wheels and coins are shaped like circles."),
    "square": ("A square has four equal sides.", "Each corner of a square is a right angle."),
    "triangle": ("A triangle has three sides and three corners.", "Slices of pizza are often shaped like triangles."),
    "star": ("A star shape has several sharp points.", "Stars are drawn on flags and badges."),
    "cross": ("A cross is made of two bars that meet in the middle.", "The plus sign is a small cross."),
    "arrow": ("An arrow points in one direction.", "Road signs use arrows to show the way."),
    "red": ("Red is the colour of ripe strawberries.", "Fire trucks are usually painted red."),
    "green": ("Green is the colour of fresh grass.", "Most leaves are green in summer."),
    "blue": ("Blue is the colour of a clear sky.", "The sea often looks blue."),
    "yellow": ("Yellow is the colour of ripe bananas.", "Many taxis are painted yellow."),
    "orange": ("Orange is the colour of carrots.", "An orange is a fruit with the same name as its colour."),
    "purple": ("Purple is the colour of grapes and plums.", "Purple was once a colour worn by kings."),
    "pink": ("Pink is a soft and light colour.", "Flamingos have pink feathers."),
    "brown": ("Brown is the colour of chocolate.", "Tree trunks are usually brown."),
}
for _n, _word in enumerate(NUMBER_WORDS[:10]):
    CONCEPT_FACTS[str(_n)] = (f"The number {_n} is written as {_word} in words.",
                              f"{_word.capitalize()} is an {'even' if _n % 2 == 0 else 'odd'} number.")


# The train part's facts (modint.perturb.pools): other true-sounding sentences about the same
# concepts, so that the misleading texts of training never repeat those of diagnosis.
TRAIN_CONCEPT_FACTS: dict[str, tuple[str, ...]] = {
    "circle": ("A circle looks the same from every side.", "Plates and clock faces are often circles.",
               "A circle can roll because it has no edges."),
    "square": ("A square is a rectangle with equal sides.", "Chessboards are divided into small squares.",
               "Floor tiles are often square."),
    "triangle": ("A triangle is the polygon with the fewest sides.", "Warning signs are often triangles.",
                 "The front of a roof often forms a triangle."),
    "star": ("A star is drawn with pointed tips.", "Children often draw stars with five points.",
             "Sheriffs wore badges shaped like stars."),
    "cross": ("A cross has four arms of equal length.", "First-aid kits are often marked with a cross.",
              "Two roads that meet form a cross when seen from above."),
    "arrow": ("An arrow has a pointed head and a straight shaft.", "Arrows on a map show where to go.",
              "Archers shoot arrows with a bow."),
    "red": ("Red is the colour of ripe tomatoes.", "Stop signs are red.", "Red is often used to mean danger."),
    "green": ("Green is the colour of limes.", "A green light means go.", "Frogs are often green."),
    "blue": ("Blue is the colour of sapphires.", "Blueberries are a deep blue.", "Many uniforms are dark blue."),
    "yellow": ("Yellow is the colour of sunflowers.", "Egg yolks are usually yellow.", "School buses are often yellow."),
    "orange": ("Orange is the colour of pumpkins.", "Goldfish are often orange.", "Traffic cones are bright orange."),
    "purple": ("Purple is the colour of lavender.", "Aubergines have purple skin.",
               "Purple is made by mixing red and blue."),
    "pink": ("Pink is the colour of cherry blossoms.", "Pink is made by mixing red and white.", "Some roses are pink."),
    "brown": ("Brown is the colour of coffee beans.", "Bears often have brown fur.", "Dry autumn leaves turn brown."),
}
for _n in range(10):
    TRAIN_CONCEPT_FACTS[str(_n)] = (f"The number after {_n} is {_n + 1}.", f"Doubling {_n} gives {2 * _n}.",
                                    f"Ten minus {_n} is {10 - _n}.")


def concept_phrase(concept: str) -> str:
    """How the misleading sentence names a concept: "a circle", "the colour red", "the number 7"."""
    if concept in COLOURS or concept in KB_COLOURS:
        return f"the colour {concept}"
    if concept.isdigit():
        return f"the number {concept}"
    article = "an" if concept[:1].lower() in "aeiou" else "a"
    return f"{article} {concept}"


def misleading_text(concept: str) -> str:
    """The misleading context for a wrong option: one false claim about the picture, two true facts."""
    first = f"The picture seems to describe {concept_phrase(concept)}."
    extra = CONCEPT_FACTS.get(concept)
    return " ".join((first, *extra)) if extra else first


# A toy knowledge base for the text-heavy task: (question templates, answer). Answers fall in the
# same spaces as the image tasks (colours, numbers, shapes).
KNOWLEDGE: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("What colour is a ripe banana?", "Which colour does a ripe banana have?"), "yellow", "colour"),
    (("What colour is fresh grass?", "Which colour is fresh grass?"), "green", "colour"),
    (("What colour is a clear sky at noon?", "Which colour is the sky on a clear day?"), "blue", "colour"),
    (("What colour is a ripe strawberry?", "Which colour does a ripe strawberry have?"), "red", "colour"),
    (("What colour is a carrot?", "Which colour does a carrot have?"), "orange", "colour"),
    (("What colour is fresh snow?", "Which colour is fresh snow?"), "white", "colour"),
    (("What colour is coal?", "Which colour does coal have?"), "black", "colour"),
    (("What colour are ripe plums?", "Which colour do ripe plums have?"), "purple", "colour"),
    (("What colour is a flamingo?", "Which colour are the feathers of a flamingo?"), "pink", "colour"),
    (("What colour is chocolate?", "Which colour does milk chocolate have?"), "brown", "colour"),
    (("What colour is an elephant?", "Which colour is the skin of an elephant?"), "grey", "colour"),
    (("What colour is a lemon?", "Which colour does a ripe lemon have?"), "yellow", "colour"),
    (("What colour is a frog?", "Which colour is a tree frog?"), "green", "colour"),
    (("What colour is a fire truck?", "Which colour are fire trucks painted?"), "red", "colour"),
    (("How many legs does a spider have?", "A spider has how many legs?"), "8", "number"),
    (("How many legs does a dog have?", "A dog has how many legs?"), "4", "number"),
    (("How many legs does a bird have?", "A bird has how many legs?"), "2", "number"),
    (("How many legs does an insect have?", "An insect has how many legs?"), "6", "number"),
    (("How many days are in a week?", "A week has how many days?"), "7", "number"),
    (("How many sides does a triangle have?", "A triangle has how many sides?"), "3", "number"),
    (("How many sides does a square have?", "A square has how many sides?"), "4", "number"),
    (("How many sides does a hexagon have?", "A hexagon has how many sides?"), "6", "number"),
    (("How many wheels does a bicycle have?", "A bicycle has how many wheels?"), "2", "number"),
    (("How many wheels does a tricycle have?", "A tricycle has how many wheels?"), "3", "number"),
    (("How many fingers are on one hand?", "One hand has how many fingers?"), "5", "number"),
    (("How many months are in a year?", "A year has how many months?"), "12", "number"),
    (("How many arms does an octopus have?", "An octopus has how many arms?"), "8", "number"),
    (("How many noses does a person have?", "A person has how many noses?"), "1", "number"),
    (("How many hours are in half a day?", "Half a day has how many hours?"), "12", "number"),
    (("How many players are on a tennis doubles team?", "A tennis doubles team has how many players?"), "2", "number"),
    (("What shape is a wheel?", "Which shape does a wheel have?"), "circle", "shape"),
    (("What shape is a coin?", "Which shape does a coin have?"), "circle", "shape"),
    (("What shape is a dice?", "Which shape does each face of a dice have?"), "square", "shape"),
    (("What shape is a chessboard square?", "Which shape does one field of a chessboard have?"), "square", "shape"),
    (("What shape is a slice of pizza?", "Which shape does a slice of pizza have?"), "triangle", "shape"),
    (("What shape is a plus sign?", "Which shape does a plus sign have?"), "cross", "shape"),
    (("What shape is a sheriff badge?", "Which shape does a sheriff badge have?"), "star", "shape"),
    (("What shape is a traffic warning sign?", "Which shape does a warning sign usually have?"), "triangle", "shape"),
    (("What shape is a road sign that points the way?", "Which shape shows a direction on a sign?"), "arrow", "shape"),
    (("What shape is a full moon?", "Which shape does a full moon have?"), "circle", "shape"),
)


def answer_space(kind: str) -> tuple[str, ...]:
    """All options a question of this kind may offer."""
    if kind == "colour":
        return KB_COLOURS
    if kind == "shape":
        return SHAPES
    if kind == "number":
        return tuple(str(n) for n in range(0, 21))
    raise KeyError(kind)
