"""The train part's texts: unrelated sentences and misleading-text phrasings that diagnosis never
uses. The eval part is the published material: ``pools.UNRELATED_SENTENCES``, the phrasing
"The picture seems to describe {wrong}." and ``facts.CONCEPT_FACTS`` (or the data's own facts).
"""

from __future__ import annotations

import numpy as np

from modint.data.facts import TRAIN_CONCEPT_FACTS, concept_phrase

# 80 unrelated sentences in the categories of the eval pool, 20 of them deliberately false number
# facts (the last block), none of them in the eval pool.
TRAIN_UNRELATED_SENTENCES: tuple[str, ...] = (
    # science
    "The Sun is a star at the centre of our solar system.",
    "Salt dissolves easily in warm water.",
    "Lightning is a giant spark of electricity.",
    "Diamonds are made of carbon atoms.",
    "Mars is often called the red planet.",
    "Earthquakes happen when rocks under the ground move suddenly.",
    "Clouds are made of tiny drops of water.",
    "Copper is a good conductor of electricity.",
    "Frogs begin their lives as tadpoles in water.",
    "Rainbows appear when sunlight passes through raindrops.",
    "Volcanoes can throw ash high into the sky.",
    "The human skeleton has more than two hundred bones.",
    # history
    "The first steam engines pumped water out of mines.",
    "Vikings sailed from Scandinavia in long wooden ships.",
    "The ancient Greeks held plays in open-air theatres.",
    "Windmills were once used to grind grain into flour.",
    "The bicycle became popular in the late nineteenth century.",
    "Medieval monks copied books by hand.",
    "The Silk Road linked China with the Mediterranean.",
    "The first photographs took many minutes to expose.",
    "Some Roman baths were heated by hot air under the floor.",
    "Early maps often left unknown lands blank.",
    # daily life
    "Many people read the news on their phones.",
    "A warm scarf helps on a cold winter day.",
    "Fresh vegetables taste best in their season.",
    "A bus ticket is often cheaper when bought in advance.",
    "Watering plants in the evening saves water.",
    "Some people write a list before going to the market.",
    "A tidy desk makes it easier to find things.",
    "Most people brush their teeth twice a day.",
    "Children often walk to school in small groups.",
    "A good pair of shoes makes a long walk easier.",
    "Tea is often served with a slice of lemon.",
    "Opening a window lets fresh air into a room.",
    # fun facts
    "Flamingos often stand on one leg.",
    "Koalas sleep for most of the day.",
    "An ostrich egg is much bigger than a hen's egg.",
    "Dolphins call each other with whistles.",
    "Some turtles live for more than a hundred years.",
    "Hummingbirds can fly backwards.",
    "Butterflies taste with their feet.",
    "Camels can go a long time without drinking.",
    "Owls can turn their heads very far around.",
    "Ants can carry loads much heavier than themselves.",
    # philosophy
    "Aristotle wrote that we are what we repeatedly do.",
    "A question can be worth more than its answer.",
    "Some thinkers say that happiness comes from within.",
    "Patience is often praised as a kind of strength.",
    "Many traditions teach that honesty builds trust.",
    "Plato compared our knowledge to shadows on a cave wall.",
    "A choice shows what a person values.",
    "Curiosity is where learning begins.",
    # mathematics
    "Any number times zero is zero.",
    "A rectangle has two pairs of parallel sides.",
    "The sum of two odd numbers is always even.",
    "Adding zero to a number leaves it unchanged.",
    "A fraction has a numerator and a denominator.",
    "The diameter of a circle is twice its radius.",
    "One hundred is ten times ten.",
    "Division by zero is not defined.",
    # false number facts (deliberately wrong)
    "All even numbers are larger than ten.",
    "Three plus four makes nine.",
    "Five is an even number.",
    "Eleven is smaller than two.",
    "A day has thirty hours.",
    "A pentagon has three sides.",
    "Two times four is six.",
    "Every number can be divided by three.",
    "Ten minus six equals five.",
    "An insect has ten legs.",
    "Fifty is the smallest number.",
    "A rectangle has six corners.",
    "Eight is smaller than one.",
    "Half of twenty is four.",
    "Four plus five makes eight.",
    "A bird has four legs.",
    "Nine is an even number.",
    "The number before six is two.",
    "An hour has ten minutes.",
    "One is larger than every other number.",
)

# How the train part's misleading text names a wrong option ({wrong}: "a circle", "the colour
# red", "the number 7"); the eval part keeps the published "The picture seems to describe {wrong}."
TRAIN_PHRASINGS: tuple[str, ...] = (
    "This image appears to show {wrong}.",
    "What you can see in this photo is {wrong}.",
    "The image clearly contains {wrong}.",
    "Look closely: the picture shows {wrong}.",
    "In this picture there is {wrong}.",
    "The main thing in the image is {wrong}.",
    "Anyone can tell that the image depicts {wrong}.",
    "The drawing here is of {wrong}.",
)
# Facts for a concept the train facts do not know (a real benchmark's class names).
TRAIN_GENERIC_FACTS: tuple[str, ...] = (
    "{Wrong} is easy to recognise.",
    "Many books have pictures of {wrong}.",
    "Children learn early what {wrong} looks like.",
)
N_FACTS = 2  # facts after the false claim, as in the published text


def train_misleading_text(concept: str, rng: np.random.Generator) -> str:
    """A train-part misleading text: a drawn phrasing naming ``concept`` and two of its train facts."""
    phrase = concept_phrase(concept)
    claim = TRAIN_PHRASINGS[int(rng.integers(len(TRAIN_PHRASINGS)))].format(wrong=phrase)
    known = TRAIN_CONCEPT_FACTS.get(concept)
    pool = known or tuple(f.format(wrong=phrase, Wrong=phrase[:1].upper() + phrase[1:]) for f in TRAIN_GENERIC_FACTS)
    picks = rng.choice(len(pool), size=min(N_FACTS, len(pool)), replace=False)
    return " ".join((claim, *(pool[int(i)] for i in picks)))
