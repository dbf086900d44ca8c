"""Frames of one planned video: a drifting grey background, grey clutter, class objects, decoys.

Every visible event is a large object (``object_area`` of the frame) in its class's saturated
hue, shape, texture and motion, blended over the background with opacity ``visual_contrast``.
Background, clutter and decoys are nearly grey, so the hue of a pixel tells which class (if any)
it shows. Rendering is one loop over frames with whole-array numpy operations on small sprites.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from avvp.stages.synth.classes import BY_NAME

TEXTURE_DEPTH = 0.55          # darkening of the pattern's "on" pixels
CLUTTER_AREA = (0.02, 0.05)   # share of the frame per clutter shape
CLUTTER_SATURATION = 0.12
SHAPE_FILL = {  # share of the bounding box a shape covers (for sizing by area)
    "square": 0.9025, "circle": 0.785, "diamond": 0.5, "triangle": 0.5, "triangle_down": 0.5,
    "hexagon": 0.65, "cross": 0.59, "ring": 0.63, "ellipse": 0.785,
}
ASPECT = {"ellipse": 1.6}     # width / height of the bounding box
DRIFTING = {"diagonal", "antidiagonal", "vstripes", "rings", "hstripes"}
DECOY_SHAPES = ("square", "circle", "diamond", "hexagon", "ring", "cross")
DECOY_TEXTURES = ("solid", "checker", "hstripes", "vstripes", "dots", "speckle")


# ----------------------------------------------------------------------------- shapes, textures

def shape_mask(shape: str, height: int, width: int) -> np.ndarray:
    """Boolean (height, width) mask of a shape filling its box."""
    v, u = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
    r = np.hypot(u, v)
    masks = {
        "square": lambda: (np.abs(u) <= 0.95) & (np.abs(v) <= 0.95),
        "circle": lambda: r <= 1.0,
        "ellipse": lambda: r <= 1.0,
        "diamond": lambda: np.abs(u) + np.abs(v) <= 1.0,
        "triangle": lambda: np.abs(u) <= (v + 1) / 2,
        "triangle_down": lambda: np.abs(u) <= (1 - v) / 2,
        "hexagon": lambda: (np.abs(v) <= 0.866) & (0.866 * np.abs(u) + 0.5 * np.abs(v) <= 0.866),
        "cross": lambda: (np.abs(u) <= 0.36) | (np.abs(v) <= 0.36),
        "ring": lambda: (r <= 1.0) & (r >= 0.45),
    }
    return masks[shape]()


def pattern_period(scale: float) -> int:
    """The period in pixels of the striped textures at a frame scale."""
    return 2 * (max(4, int(round(10 * scale))) // 2)


def texture(name: str, height: int, width: int, phase: int, scale: float, seed: int) -> np.ndarray:
    """(height, width) float pattern in {0, 1} (1 = darkened), shifted by ``phase`` pixels."""
    y, x = np.mgrid[0:height, 0:width]
    period = pattern_period(scale)
    half = period // 2
    if name == "solid":
        return np.zeros((height, width))
    if name == "hstripes":
        return ((y + phase) // half % 2).astype(float)
    if name == "vstripes":
        return ((x + phase) // half % 2).astype(float)
    if name == "diagonal":
        return ((x + y + phase) // half % 2).astype(float)
    if name == "antidiagonal":
        return ((x - y + phase + 4 * period * height) // half % 2).astype(float)
    if name == "grid":
        line = max(2, half // 2)
        return (((x + phase) % period < line) | ((y + phase) % period < line)).astype(float)
    if name == "checker":
        cell = max(3, int(round(8 * scale)))
        return ((x // cell + y // cell) % 2).astype(float)
    if name == "fine_checker":
        cell = max(2, int(round(3 * scale)))
        return ((x // cell + y // cell) % 2).astype(float)
    if name == "dots":
        cell = max(4, int(round(8 * scale)))
        dy, dx = y % cell - cell / 2, x % cell - cell / 2
        return (dy * dy + dx * dx <= (cell / 3) ** 2).astype(float)
    if name == "rings":
        r = np.hypot(y - height / 2, x - width / 2)
        return ((r + phase) // half % 2).astype(float)
    if name == "speckle":
        block = max(1, int(round(2 * scale)))
        rng = np.random.default_rng(seed)
        coarse = rng.random((height // block + 1, width // block + 1)) < 0.5
        return coarse.repeat(block, 0).repeat(block, 1)[:height, :width].astype(float)
    raise ValueError(f"unknown texture {name!r}")


def hue_rgb(hue: float) -> np.ndarray:
    """Fully saturated, full-value RGB of a hue in degrees."""
    return np.array(colorsys.hsv_to_rgb((hue % 360) / 360, 1.0, 1.0), dtype=np.float32)


# ----------------------------------------------------------------------------- motion

def _motion(kind: str, t: np.ndarray, p: Mapping[str, float], amp: float):
    """(dx, dy, brightness) per frame time for one motion kind; amp in pixels."""
    s, ph = p["speed"], p["phase"]
    zero, one = np.zeros_like(t), np.ones_like(t)
    two_pi = 2 * np.pi
    if kind == "still":
        return zero, zero, one
    if kind == "pulse":
        return zero, zero, 0.8 + 0.2 * np.sin(two_pi * (2 * s * t + ph))
    if kind == "orbit":
        a = two_pi * (0.5 * s * t + ph)
        return amp * np.cos(a), 0.7 * amp * np.sin(a), one
    if kind == "bounce":
        return zero, amp * (0.5 - np.abs(np.sin(np.pi * (2 * s * t + ph)))), one
    if kind == "sway":
        return amp * np.sin(two_pi * (0.4 * s * t + ph)), zero, one
    if kind == "swing":
        a = two_pi * (0.25 * s * t + ph)
        return amp * np.sin(a), 0.3 * amp * np.cos(2 * a), one
    if kind == "shake":
        return 2.0 * np.sin(two_pi * (7 * t + ph)), 2.0 * np.sin(two_pi * (11 * t + ph)), one
    if kind == "vibrate":
        return 1.5 * np.sin(two_pi * (13 * t + ph)), zero, one
    if kind == "hop":
        return amp * (np.floor(2 * s * t + 3 * ph) % 3 - 1), zero, one
    if kind == "tick":
        return 0.5 * amp * (np.floor(4 * s * t + 4 * ph) % 4 - 1.5), zero, one
    if kind == "drift":
        return amp * (2 * np.abs(np.mod(0.15 * s * t + ph, 1.0) - 0.5) * 2 - 1), zero, one
    raise ValueError(f"unknown motion {kind!r}")


# ----------------------------------------------------------------------------- sprites

@dataclass
class Sprite:
    """A shape drawn on frames ``[first, last)``: mask, colour, texture and per-frame placement."""

    mask: np.ndarray          # (h, w) bool
    colour: np.ndarray        # (3,) float32
    first: int
    last: int
    left: np.ndarray          # (T,) int, top-left corner per frame
    top: np.ndarray
    alpha: np.ndarray         # (T,) float, opacity per frame
    texture_name: str
    texture_scale: float
    texture_seed: int
    drift: float              # texture shift in pixels per frame (0: static)

    def __post_init__(self) -> None:
        self._cache: dict[int, np.ndarray] = {}

    def pixels(self, frame: int) -> np.ndarray:
        """(h, w, 3) colour of the sprite at ``frame`` (texture applied)."""
        key = int(frame * self.drift) % pattern_period(self.texture_scale) if self.drift else 0
        if key not in self._cache:
            h, w = self.mask.shape
            pattern = texture(self.texture_name, h, w, key, self.texture_scale, self.texture_seed)
            self._cache[key] = (self.colour * (1 - TEXTURE_DEPTH * pattern)[..., None]).astype(np.float32)
        return self._cache[key]


def _box(shape: str, area: float) -> tuple[int, int]:
    aspect = ASPECT.get(shape, 1.0)
    height = np.sqrt(area / (SHAPE_FILL[shape] * aspect))
    return max(3, int(round(height))), max(3, int(round(height * aspect)))


def _sprite(shape: str, tex: str, motion: str, colour: np.ndarray, extent: tuple[int, int],
            p: Mapping[str, float], area: float, alpha: float, size: tuple[int, int],
            fps: int, n_frames: int, seed: int) -> Sprite:
    width, height = size
    h, w = _box(shape, area)
    t = np.arange(n_frames) / fps
    dx, dy, bright = _motion(motion, t, p, 0.08 * width)
    left = np.round(p["x"] * width + dx - w / 2).astype(int)
    top = np.round(p["y"] * height + dy - h / 2).astype(int)
    scale = height / 96
    return Sprite(shape_mask(shape, h, w), colour.astype(np.float32), extent[0] * fps,
                  min(extent[1] * fps, n_frames), left, top, alpha * bright, tex, scale, seed,
                  0.5 * p["speed"] * scale if tex in DRIFTING else 0.0)


def event_sprites(video: Mapping, settings: Mapping) -> list[Sprite]:
    """One sprite per visible event (plan order) plus the visual decoy, if any."""
    width, height, fps = settings["width"], settings["height"], settings["fps"]
    n_frames = settings["duration"] * fps
    area = settings["object_area"] * width * height
    out = []
    for event in video["events"]:
        if event["visual"] is None:
            continue
        sig, p = BY_NAME[event["class"]].visual, event["visual_params"]
        out.append(_sprite(sig.shape, sig.texture, sig.motion, hue_rgb(sig.hue + p["hue_shift"]),
                           event["visual"], p, area * p["size"], settings["visual_contrast"],
                           (width, height), fps, n_frames, p["texture_seed"]))
    decoy = video.get("decoy")
    if decoy and decoy["modality"] == "visual":
        p = dict(decoy["params"], speed=1.0)
        grey = np.full(3, p["shade"], dtype=np.float32)
        out.append(_sprite(DECOY_SHAPES[p["shape"] % len(DECOY_SHAPES)],
                           DECOY_TEXTURES[p["texture"] % len(DECOY_TEXTURES)], "sway", grey,
                           (decoy["onset"], decoy["offset"]), p, area, settings["visual_contrast"],
                           (width, height), fps, n_frames, p["shape"]))
    return out


def clutter_sprites(rng: np.random.Generator, settings: Mapping) -> list[Sprite]:
    """``clutter`` small nearly-grey shapes moving in straight lines, bouncing off the edges."""
    width, height, fps = settings["width"], settings["height"], settings["fps"]
    n_frames = settings["duration"] * fps
    t = np.arange(n_frames) / fps
    shapes = sorted(SHAPE_FILL)
    out = []
    for _ in range(settings["clutter"]):
        shape = shapes[int(rng.integers(len(shapes)))]
        h, w = _box(shape, rng.uniform(*CLUTTER_AREA) * width * height)
        colour = _greyish(rng, rng.uniform(0.15, 0.85))
        x0, y0 = rng.uniform(0, width - w), rng.uniform(0, height - h)
        speed, angle = rng.uniform(5, 25) * width / 128, rng.uniform(0, 2 * np.pi)
        left = _bounce(x0 + speed * np.cos(angle) * t, width - w)
        top = _bounce(y0 + speed * np.sin(angle) * t, height - h)
        out.append(Sprite(shape_mask(shape, h, w), colour, 0, n_frames, left, top,
                          np.ones(n_frames), "solid", 1.0, 0, 0.0))
    return out


def _bounce(pos: np.ndarray, span: float) -> np.ndarray:
    span = max(span, 1.0)
    folded = np.abs(np.mod(pos, 2 * span) - span)
    return np.round(span - folded).astype(int)


def _greyish(rng: np.random.Generator, value: float) -> np.ndarray:
    hue = rng.random()
    return np.array(colorsys.hsv_to_rgb(hue, CLUTTER_SATURATION * rng.random(), value), dtype=np.float32)


# ----------------------------------------------------------------------------- background, frames

def _upsample(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a small 2-D grid to (height, width)."""
    gy = np.linspace(0, grid.shape[0] - 1, height)
    gx = np.linspace(0, grid.shape[1] - 1, width)
    rows = np.stack([np.interp(gx, np.arange(grid.shape[1]), r) for r in grid])
    return np.stack([np.interp(gy, np.arange(grid.shape[0]), c) for c in rows.T], axis=1)


def background(rng: np.random.Generator, settings: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """A wide grey texture (H, W + travel, 3) and the horizontal offset of each frame into it."""
    width, height, fps, duration = settings["width"], settings["height"], settings["fps"], settings["duration"]
    speed = rng.uniform(3, 12) * width / 128  # pixels per second
    wide = width + int(np.ceil(speed * duration)) + 1
    blotches = _upsample(rng.uniform(-0.1, 0.1, (6, max(2, wide * 6 // height))), height, wide)
    grain = rng.uniform(-0.03, 0.03, (height, wide))
    tint = _greyish(rng, rng.uniform(0.3, 0.55))
    texture_ = (tint[None, None, :] + (blotches + grain)[..., None]).astype(np.float32)
    offsets = np.floor(speed * np.arange(duration * fps) / fps).astype(int)
    return np.clip(texture_, 0, 1), offsets


def _draw(frame: np.ndarray, base: np.ndarray, sprite: Sprite, i: int, blend: bool) -> None:
    """Draw a sprite into ``frame`` at frame index ``i``, blended against ``base``."""
    h, w = sprite.mask.shape
    height, width = frame.shape[:2]
    x, y = sprite.left[i], sprite.top[i]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
    if x1 <= x0 or y1 <= y0:
        return
    mask = sprite.mask[y0 - y:y1 - y, x0 - x:x1 - x, None]
    pixels = sprite.pixels(i)[y0 - y:y1 - y, x0 - x:x1 - x]
    if blend:
        a = sprite.alpha[i]
        pixels = base[y0:y1, x0:x1] * (1 - a) + pixels * a
    np.copyto(frame[y0:y1, x0:x1], pixels, where=mask)


def render_frames(video: Mapping, settings: Mapping) -> np.ndarray:
    """The video's frames as uint8 (duration * fps, height, width, 3) RGB.

    Args:
        video: one video of the plan (see :mod:`avvp.stages.synth.plan`).
        settings: resolved synth settings (``width``, ``height``, ``fps``, ``duration``,
            ``visual_contrast``, ``object_area``, ``clutter``).
    """
    width, height = settings["width"], settings["height"]
    n_frames = settings["duration"] * settings["fps"]
    rng = np.random.default_rng([video["seed"], 2])
    wide, offsets = background(rng, settings)
    clutter = clutter_sprites(rng, settings)
    sprites = event_sprites(video, settings)
    out = np.empty((n_frames, height, width, 3), dtype=np.uint8)
    for i in range(n_frames):
        base = wide[:, offsets[i]:offsets[i] + width].copy()
        for sprite in clutter:
            _draw(base, base, sprite, i, blend=False)
        frame = base.copy()
        for sprite in sprites:
            if sprite.first <= i < sprite.last:
                _draw(frame, base, sprite, i, blend=True)
        np.multiply(frame, 255, out=frame)
        out[i] = frame + 0.5  # float -> uint8 truncation after rounding offset
    return out
