"""A procedural generator of natural-looking scenes: the train part's switch photos.

Real photos that ship inside installed packages without a download are few (scikit-image's
bundled ones), and the eval part keeps those. Training needs its own, so this module paints
scenes from a fixed seed, fully offline, in four kinds:

- ``landscape``: a sky gradient (day, sunset, dusk or overcast) with a sun and fractal clouds,
  two to four mountain ridges fading into the haze, a textured ground, sometimes a lake that
  mirrors the sky;
- ``forest``: sky and ground with rows of trees (trunks and noisy canopies), smaller and paler
  toward the horizon;
- ``city``: a skyline of buildings with window grids over a street;
- ``texture``: a close-up of a natural surface (stone, bark, sand, leaves, water, pebbles).

Each scene is a pure function of (kind, index): ``scene(kind, index)`` draws it from
``derive_seed("modint-scene", GENERATOR_VERSION, kind, index)``. Textures come from fractal value
noise (random grids at doubling resolutions, bicubically upsampled and summed), which is what
gives clouds, rock and foliage their photographic roughness. A last blur and film grain hide
the drawing's hard edges. ``GENERATOR_VERSION`` changes whenever a change here changes pixels.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from modint.seeding import derive_seed

GENERATOR_VERSION = 1
SCENE_KINDS = ("landscape", "forest", "city", "texture")
WIDTH, HEIGHT = 384, 288

_SKIES = {  # (zenith, horizon) colours
    "day": ((60, 110, 200), (185, 215, 240)),
    "sunset": ((70, 60, 140), (250, 160, 90)),
    "dusk": ((25, 30, 70), (170, 110, 150)),
    "overcast": ((140, 145, 155), (205, 205, 210)),
}
_GROUNDS = {"grass": (70, 120, 45), "dry": (170, 150, 80), "snow": (230, 235, 240), "sand": (200, 175, 130)}
_SURFACES = {  # a dark and a light colour per surface
    "stone": ((80, 80, 85), (175, 170, 160)), "bark": ((50, 35, 25), (130, 100, 70)),
    "sand": ((170, 140, 100), (235, 215, 175)), "leaves": ((20, 60, 20), (110, 170, 60)),
    "water": ((15, 50, 90), (120, 180, 210)), "moss": ((40, 70, 30), (140, 160, 70)),
}


def fractal_noise(rng: np.random.Generator, height: int, width: int, octaves: int = 5, base: int = 3,
                  persistence: float = 0.55) -> np.ndarray:
    """[height, width] float32 in [0, 1]: a sum of upsampled random grids, finer ones weaker."""
    out = np.zeros((height, width), np.float32)
    amplitude = 1.0
    for octave in range(octaves):
        cells = base * 2 ** octave
        grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
        layer = Image.fromarray(grid, mode="F").resize((width, height), Image.BICUBIC)
        out += amplitude * np.asarray(layer)
        amplitude *= persistence
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / max(hi - lo, 1e-6)


def _ridge(rng: np.random.Generator, width: int, octaves: int = 6) -> np.ndarray:
    """[width] in [0, 1]: a 1-D fractal line, the outline of a mountain range."""
    x = np.linspace(0, 1, width)
    out = np.zeros(width)
    amplitude = 1.0
    for octave in range(octaves):
        points = 2 + 2 ** (octave + 1)
        out += amplitude * np.interp(x, np.linspace(0, 1, points), rng.random(points))
        amplitude *= 0.5
    return (out - out.min()) / max(out.max() - out.min(), 1e-6)


def _mix(a, b, t):
    return np.asarray(a, np.float32) * (1 - t) + np.asarray(b, np.float32) * t


def _sky(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    zenith, horizon = _SKIES[str(rng.choice(list(_SKIES)))]
    t = np.linspace(0, 1, HEIGHT, dtype=np.float32)[:, None, None] ** 0.8
    sky = np.broadcast_to(_mix(zenith, horizon, t), (HEIGHT, WIDTH, 3)).copy()
    if rng.random() < 0.6:  # a sun with its glow
        cx, cy = rng.uniform(0.1, 0.9) * WIDTH, rng.uniform(0.1, 0.45) * HEIGHT
        yy, xx = np.mgrid[:HEIGHT, :WIDTH]
        d = np.hypot(xx - cx, yy - cy) / (0.05 * WIDTH)
        glow = np.clip(1.3 - d, 0, 1)[..., None] + 0.25 * np.exp(-d / 4)[..., None]
        sky = _mix(sky, (255, 245, 215), np.clip(glow, 0, 1))
    clouds = fractal_noise(rng, HEIGHT, WIDTH, base=2)
    cover = rng.uniform(0.45, 0.75)
    alpha = np.clip((clouds - cover) / (1 - cover) * 1.6, 0, 0.9)[..., None]
    sky = _mix(sky, np.asarray(horizon, np.float32) * 0.3 + 180, alpha)
    return sky, np.asarray(horizon, np.float32)


def _ground(rng: np.random.Generator, canvas: np.ndarray, top: int) -> None:
    colour = np.asarray(_GROUNDS[str(rng.choice(list(_GROUNDS)))], np.float32)
    texture = fractal_noise(rng, HEIGHT - top, WIDTH, base=6)[..., None]
    depth = np.linspace(0.8, 1.1, HEIGHT - top, dtype=np.float32)[:, None, None]
    canvas[top:] = np.clip(colour * (0.65 + 0.6 * texture) * depth, 0, 255)


def _landscape(rng: np.random.Generator) -> np.ndarray:
    canvas, haze = _sky(rng)
    horizon = int(rng.uniform(0.55, 0.72) * HEIGHT)
    layers = int(rng.integers(2, 5))
    rock = np.asarray([(90, 85, 100), (70, 90, 70), (110, 95, 80)][int(rng.integers(3))], np.float32)
    for i in range(layers):  # far to near: lower, darker, less haze
        near = (i + 1) / layers
        ridge = _ridge(rng, WIDTH)
        top = horizon - (rng.uniform(0.12, 0.35) * HEIGHT) * (1.1 - 0.5 * near) * ridge
        rows = np.arange(HEIGHT)[:, None]
        mask = rows >= top[None, :]
        shade = fractal_noise(rng, HEIGHT, WIDTH, base=5)[..., None]
        colour = _mix(haze, rock * (0.7 + 0.5 * shade), 0.35 + 0.6 * near)
        canvas = np.where(mask[..., None], colour, canvas)
    _ground(rng, canvas, horizon)
    if rng.random() < 0.5:  # a lake mirrors what stands above it
        lake_top = horizon + int(rng.uniform(0.02, 0.1) * HEIGHT)
        depth = HEIGHT - lake_top
        mirror = canvas[max(0, lake_top - depth):lake_top][::-1]
        ripples = fractal_noise(rng, mirror.shape[0], WIDTH, base=8)[..., None]
        canvas[lake_top:lake_top + mirror.shape[0]] = _mix(mirror * 0.8, (40, 70, 100), 0.25 + 0.2 * ripples)
    return canvas


def _forest(rng: np.random.Generator) -> np.ndarray:
    canvas, haze = _sky(rng)
    horizon = int(rng.uniform(0.45, 0.65) * HEIGHT)
    _ground(rng, canvas, horizon)
    image = Image.fromarray(canvas.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    rows = int(rng.integers(3, 6))
    for row in range(rows):  # back to front
        near = (row + 1) / rows
        base_y = horizon + near * (HEIGHT - horizon) * 0.9
        size = (0.06 + 0.16 * near) * HEIGHT
        for _ in range(int(rng.integers(4, 10))):
            x = rng.uniform(-0.05, 1.05) * WIDTH
            green = _mix(haze, (30 + 40 * rng.random(), 80 + 60 * rng.random(), 30), 0.4 + 0.6 * near)
            trunk = _mix(haze, (70, 50, 35), 0.4 + 0.6 * near)
            draw.rectangle((x - size * 0.08, base_y - size, x + size * 0.08, base_y), fill=tuple(int(c) for c in trunk))
            for _ in range(int(rng.integers(4, 9))):  # a canopy of overlapping blobs
                bx, by = x + rng.normal(0, size * 0.25), base_y - size * (1.1 + rng.uniform(0, 0.6))
                r = size * rng.uniform(0.2, 0.4)
                shade = rng.uniform(0.75, 1.2)
                draw.ellipse((bx - r, by - r, bx + r, by + r), fill=tuple(int(min(255, c * shade)) for c in green))
    return np.asarray(image, np.float32)


def _city(rng: np.random.Generator) -> np.ndarray:
    canvas, haze = _sky(rng)
    street = int(rng.uniform(0.8, 0.9) * HEIGHT)
    image = Image.fromarray(canvas.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for depth in (0, 1):  # a paler row behind, then the front row
        x = -rng.uniform(0, 30)
        while x < WIDTH:
            w = rng.uniform(0.08, 0.2) * WIDTH
            h = rng.uniform(0.25, 0.6 if depth else 0.75) * HEIGHT * (0.8 + 0.3 * depth)
            wall = _mix(haze, rng.uniform(60, 170, 3), 0.45 + 0.5 * depth)
            draw.rectangle((x, street - h, x + w, street), fill=tuple(int(c) for c in wall))
            lit = rng.random() < 0.4
            for wy in np.arange(street - h + 8, street - 10, 12):
                for wx in np.arange(x + 5, x + w - 6, 10):
                    glass = (240, 220, 140) if lit and rng.random() < 0.6 else tuple(int(c * 0.6) for c in wall)
                    draw.rectangle((wx, wy, wx + 5, wy + 6), fill=glass)
            x += w + rng.uniform(0, 12)
    draw.rectangle((0, street, WIDTH, HEIGHT), fill=(60, 60, 65))
    return np.asarray(image, np.float32)


def _texture(rng: np.random.Generator) -> np.ndarray:
    name = str(rng.choice(list(_SURFACES) + ["pebbles"]))
    if name == "pebbles":
        canvas = np.full((HEIGHT, WIDTH, 3), 90, np.float32)
        image = Image.fromarray(canvas.astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(80, 160))):
            x, y = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)
            rx, ry = rng.uniform(8, 30), rng.uniform(6, 24)
            grey = rng.uniform(90, 200)
            tint = rng.uniform(0.85, 1.1, 3)
            draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=tuple(int(min(255, grey * t)) for t in tint))
        canvas = np.asarray(image, np.float32)
        return canvas * (0.75 + 0.4 * fractal_noise(rng, HEIGHT, WIDTH, base=10)[..., None])
    dark, light = _SURFACES[name]
    if name == "bark":  # stretched noise: vertical grain
        grain = np.asarray(Image.fromarray(fractal_noise(rng, HEIGHT, WIDTH // 6, base=8), mode="F")
                           .resize((WIDTH, HEIGHT), Image.BICUBIC))
        t = np.clip(grain, 0, 1)
    else:
        t = fractal_noise(rng, HEIGHT, WIDTH, base=int(rng.integers(3, 9)))
    return _mix(dark, light, t[..., None] ** rng.uniform(0.7, 1.4))


_PAINTERS = {"landscape": _landscape, "forest": _forest, "city": _city, "texture": _texture}


def scene(kind: str, index: int) -> Image.Image:
    """The ``index``-th scene of a kind: an RGB image of WIDTH x HEIGHT, the same on every run."""
    if kind not in _PAINTERS:
        raise ValueError(f"unknown scene kind {kind!r} (use one of {', '.join(SCENE_KINDS)})")
    rng = np.random.default_rng(derive_seed("modint-scene", GENERATOR_VERSION, kind, index))
    pixels = _PAINTERS[kind](rng)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.7))
    grain = rng.normal(0, 4, (HEIGHT, WIDTH, 1)).astype(np.float32)
    return Image.fromarray(np.clip(np.asarray(image, np.float32) + grain, 0, 255).astype(np.uint8))
