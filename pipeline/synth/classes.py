"""Class definitions of the synthetic corpus: what each class looks like and sounds like.

A class is a function of its index and the class count only (not of the seed), so two
corpora generated with different seeds (say a training and a held-out one) share classes.
"""
from __future__ import annotations

import colorsys
from dataclasses import asdict, dataclass

from pipeline.synth.hard import class_sound

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "ring", "star", "hexagon")
TEXTURES = ("solid", "stripes", "checker", "dots")
TIMBRES = ("sine", "square", "saw", "bell")
RHYTHMS = ("steady", "pulse2", "pulse4", "tremolo8")
COLOUR_NAMES = ("red", "orange", "yellow", "lime", "green", "teal", "cyan", "azure",
                "blue", "violet", "purple", "pink")


@dataclass(frozen=True)
class SynthClass:
    index: int
    name: str
    shape: str
    texture: str
    rgb: tuple[int, int, int]
    colour: str
    f0: float       # fundamental frequency of the sound, Hz (0: drawn per video, difficulty=hard)
    timbre: str
    rhythm: str

    def caption_words(self) -> dict[str, str]:
        if not self.f0:
            pitch = "varying"
        else:
            pitch = "low" if self.f0 < 400 else ("high" if self.f0 > 900 else "middle")
        return {"colour": self.colour, "texture": self.texture, "shape": self.shape,
                "pitch": pitch, "timbre": self.timbre, "rhythm": self.rhythm}

    def to_json(self) -> dict:
        return asdict(self)


def make_classes(n_classes: int, difficulty: str = "easy") -> list[SynthClass]:
    """K distinct classes: shape, texture, hue, pitch, timbre and rhythm vary together.

    Hues and pitches are spread evenly so neighbouring classes differ in several
    attributes at once; no two classes share the (shape, texture, hue) triple. With
    ``difficulty="hard"`` the looks are the same, but a class's sound is only a rhythm
    (and, past the eighth class, a timbre family): ``f0`` is 0 (drawn per video) and
    ``timbre`` names the family (``pipeline.synth.hard``).
    """
    if difficulty not in ("easy", "hard"):
        raise ValueError(f"difficulty must be 'easy' or 'hard', got {difficulty!r}")
    if not 2 <= n_classes <= 64:
        raise ValueError(f"n_classes must be between 2 and 64, got {n_classes}")
    classes = []
    for i in range(n_classes):
        hue = (i * 0.618034) % 1.0  # golden-ratio steps keep hues apart for any K
        r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
        # log-spaced pitches from 220 Hz to 1760 Hz (3 octaves)
        f0 = 220.0 * 2 ** (3.0 * i / max(n_classes - 1, 1))
        shape = SHAPES[i % len(SHAPES)]
        texture = TEXTURES[(i // len(SHAPES) + i) % len(TEXTURES)]
        colour = COLOUR_NAMES[int(hue * len(COLOUR_NAMES)) % len(COLOUR_NAMES)]
        classes.append(SynthClass(
            index=i, name=f"{colour}_{texture}_{shape}", shape=shape, texture=texture,
            rgb=(int(r * 255), int(g * 255), int(b * 255)), colour=colour, f0=round(f0, 2),
            timbre=TIMBRES[(i * 3) % len(TIMBRES)], rhythm=RHYTHMS[(i // 2) % len(RHYTHMS)],
        ))
    if difficulty == "hard":
        classes = [SynthClass(**{**asdict(c), "f0": 0.0, "rhythm": class_sound(c.index)[0],
                                 "timbre": class_sound(c.index)[1]}) for c in classes]
    names = [c.name for c in classes]
    for i, c in enumerate(classes):  # disambiguate names if the colour bins collide
        if names.count(c.name) > 1:
            classes[i] = SynthClass(**{**asdict(c), "name": f"{c.name}_{i}"})
    return classes


_TEMPLATES = (
    "a {colour} {texture} {shape} making a {pitch} {timbre} sound",
    "{colour} {shape} with a {texture} pattern, {rhythm} {pitch}-pitched {timbre} tone",
    "the {shape} that sounds like a {timbre} at {pitch} pitch",
    "a {pitch} {rhythm} {timbre} note from a {colour} {shape}",
)


def caption(cls: SynthClass, variant: int) -> str:
    return _TEMPLATES[variant % len(_TEMPLATES)].format(**cls.caption_words())
