"""Event class lists: the 25 LLP classes in official index order, and per-data-set lists.

A data set folder in LLP format may hold a ``classes.txt`` (one name per line, in index order);
the synthetic demo data set writes one. Without it, the folder is taken to use the LLP classes.
"""

from __future__ import annotations

from pathlib import Path

from avvp.infra.errors import InputError

LLP_CLASSES: tuple[str, ...] = (
    "Speech", "Car", "Cheering", "Dog", "Cat", "Frying_(food)", "Basketball_bounce",
    "Fire_alarm", "Chainsaw", "Cello", "Banjo", "Singing", "Chicken_rooster", "Violin_fiddle",
    "Vacuum_cleaner", "Baby_laughter", "Accordion", "Lawn_mower", "Motorcycle", "Helicopter",
    "Acoustic_guitar", "Telephone_bell_ringing", "Baby_cry_infant_cry", "Blender", "Clapping",
)

CLASSES_FILE = "classes.txt"


def load_classes(folder: str | Path) -> list[str]:
    """The class list of an annotation folder: its ``classes.txt``, else the 25 LLP classes."""
    path = Path(folder) / CLASSES_FILE
    if not path.exists():
        return list(LLP_CLASSES)
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(set(names)) != len(names):
        raise InputError(path, "class names are not unique")
    if not names:
        raise InputError(path, "no class names")
    return names


def write_classes(folder: str | Path, names: list[str]) -> None:
    """Write ``classes.txt`` into ``folder`` (atomically)."""
    from avvp.infra.atomic import write_text

    write_text(Path(folder) / CLASSES_FILE, "".join(f"{n}\n" for n in names))
