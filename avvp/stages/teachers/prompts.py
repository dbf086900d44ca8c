"""VALOR's class prompts and per-class thresholds for the CLIP and CLAP teachers, in LLP class order.

The prompts are used verbatim, typos included ("vaccum", "a acoustic guiter"): they change the
text embeddings and so the scores the thresholds were chosen for.

* CLIP: the text of class c is ``CLIP_PROMPTS[c]``; its score is 100 * cos(image, text) (the
  checkpoint's exp(logit_scale)), and a segment is visually positive when the score is strictly
  greater than ``CLIP_THRESHOLDS[c]``.
* CLAP: the text of class c is ``clap_prompts()[c]`` = "This is a sound of " + the lowercased
  ``CLAP_NAMES[c]``; its score is exp(logit_scale_a) * <audio, text> with both embeddings
  L2-normalised, and a segment is audibly positive when the score is strictly greater than
  ``CLAP_THRESHOLDS[c]``.

Both threshold vectors are VALOR's hard-coded integers; nothing records how they were chosen.
"""

from __future__ import annotations

from avvp.core.classes import LLP_CLASSES

CLIP_PROMPTS: tuple[str, ...] = (
    "A photo of people talking.",
    "A photo of a car.",
    "A photo of people cheering.",
    "A photo of a dog.",
    "A photo of a cat.",
    "A photo of frying food.",
    "A photo of people playing basketball.",
    "A photo of a fire alarm.",
    "A photo of a chainsaw.",
    "A photo of a cello.",
    "A photo of a banjo.",
    "A photo of people singing.",
    "A photo of a chicken or a rooster.",
    "A photo of a violin.",
    "A photo of a vaccum cleaner.",
    "A photo of a laughing baby.",
    "A photo of an accordion.",
    "A photo of a lawnmower.",
    "A photo of a motorcycle.",
    "A photo of a helicopter.",
    "A photo of a acoustic guiter.",
    "A photo of a ringing telephone.",
    "A photo of a crying baby.",
    "A photo of a blender.",
    "A photo of hands clapping.",
)

CLIP_THRESHOLDS: tuple[int, ...] = (
    20, 15, 18, 14, 15, 18, 18, 15, 15, 15, 15, 18, 15, 15, 15, 15, 15, 15, 15, 16, 14, 15, 15, 15, 18,
)

CLAP_NAMES: tuple[str, ...] = (
    "Speech",
    "Car",
    "Cheering",
    "Dog",
    "Cat",
    "Frying (food)",
    "Basketball bounce",
    "Fire alarm",
    "Chainsaw",
    "Cello",
    "Banjo",
    "Singing",
    "Chicken, rooster",
    "Violin fiddle",
    "Vacuum cleaner",
    "Baby laughter",
    "Accordion",
    "Lawn mower",
    "Motorcycle",
    "Helicopter",
    "Acoustic guitar",
    "Telephone bell ringing",
    "Baby cry, infant cry",
    "Blender",
    "Clapping",
)

CLAP_THRESHOLDS: tuple[int, ...] = (
    0, 0, 1, 4, 6, -2, 4, 4, 2, 2, 2, 1, 2, 3, 0, 2, 2, 2, 0, 2, -1, 2, 3, 3, 0,
)

CLAP_TEMPLATE = "This is a sound of "

assert len(CLIP_PROMPTS) == len(CLIP_THRESHOLDS) == len(CLAP_NAMES) == len(CLAP_THRESHOLDS) == len(LLP_CLASSES)


def clap_prompts() -> tuple[str, ...]:
    """The 25 CLAP texts, "This is a sound of " + the lowercased class name, in LLP order."""
    return tuple(CLAP_TEMPLATE + name.lower() for name in CLAP_NAMES)
