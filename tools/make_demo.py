#!/usr/bin/env python3
"""Make the demo catalogue in `examples/demo/`: drawn product pictures with Persian and English titles.

Everything comes from this file (Pillow drawings, invented brands, template titles): no downloaded or copied
data. Deterministic: the same seed gives byte-identical files (with the same Pillow build).

    python tools/make_demo.py                  # rewrite examples/demo/
    python tools/make_demo.py --out /tmp/demo  # somewhere else
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import math
import random
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

SEED = 1404
REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "examples" / "demo"
FIELDS = ("id", "title", "description", "image", "category", "tags")
SS = 2  # drawings are made at SS x the final size, then scaled down (anti-aliasing)
JPEG_QUALITY = 85

type RGB = tuple[int, int, int]

# ---------------------------------------------------------------- vocabulary

# key: (English tag value, Persian tag value, fill colour, English title words, Persian title words)
COLOURS: dict[str, tuple[str, str, RGB, tuple[str, ...], tuple[str, ...]]] = {
    "red": ("Red", "قرمز", (196, 38, 44), ("Red", "red"), ("قرمز",)),
    "blue": ("Blue", "آبی", (52, 110, 196), ("Blue", "blue"), ("آبی",)),
    "navy": ("Navy Blue", "سرمه‌ای", (30, 42, 92), ("Navy Blue", "Navy"), ("سرمه‌ای", "سرمه ای")),
    "black": ("Black", "مشکی", (30, 30, 33), ("Black", "black"), ("مشکی", "سیاه")),
    "white": ("White", "سفید", (240, 240, 236), ("White", "white"), ("سفید",)),
    "grey": ("Grey", "طوسی", (132, 134, 138), ("Grey", "Gray"), ("طوسی", "خاکستری")),
    "brown": ("Brown", "قهوه‌ای", (122, 78, 42), ("Brown", "Tan"), ("قهوه‌ای", "قهوه ای")),
    "green": ("Green", "سبز", (44, 128, 70), ("Green", "Olive Green"), ("سبز", "سبز یشمی")),
}

# key: (English, Persian)
USAGES: dict[str, tuple[str, str]] = {
    "casual": ("Casual", "روزمره"),
    "sports": ("Sports", "ورزشی"),
    "formal": ("Formal", "رسمی"),
    "travel": ("Travel", "مسافرتی"),
}

# key: (tag value, words that may show it in a title)
FEATURES: dict[str, tuple[str, tuple[str, ...]]] = {
    "waterproof_fa": ("ضدآب", ("ضدآب", "ضد آب")),
    "original_fa": ("اورجینال", ("اورجینال", "اصل", "اوریجینال")),
    "leather_fa": ("چرم طبیعی", ("چرم طبیعی", "چرمی", "چرم")),
    "cotton_fa": ("نخی", ("نخی", "۱۰۰٪ نخ", "نخ پنبه")),
    "polarized_fa": ("پلاریزه", ("پلاریزه", "پلاریزد", "Polarized")),
    "uv400_fa": ("UV400", ("UV400", "uv400", "یووی ۴۰۰")),
    "waterproof": ("Waterproof", ("Waterproof", "Water Resistant 50m", "WR100")),
    "original": ("Original", ("Original", "100% Original", "Genuine")),
    "leather": ("Leather", ("Leather Strap", "Genuine Leather", "Leather")),
    "slimfit": ("Slim Fit", ("Slim Fit", "Skinny", "slim-fit")),
    "stretch": ("Stretch", ("Stretch", "Stretchy", "Flex")),
    "laptop": ("Laptop Compartment", ('15.6" Laptop', "Laptop", "with Laptop Sleeve")),
    "dishwasher": ("Dishwasher Safe", ("Dishwasher Safe", "dishwasher-safe")),
    "microwave": ("Microwave Safe", ("Microwave Safe", "Microwavable")),
}

BRANDS_FA = ("رانیکا", "آوین", "پارمیس", "نیلا", "کاژه", "سپیدار", "تارا", "ویونا", "آرتمن", "بهسا")
BRANDS_FA_LATIN = ("Ranika", "Avin", "Velora", "Kazhe", "Artman")
BRANDS_EN = ("Denvor", "Kronix", "Trekko", "Maplo", "Velto", "Northam", "Oakrest", "Bluefin", "Zentra", "Corvi")


@dataclass(frozen=True, slots=True)
class Category:
    """One demo category: its path, language, how many products, what it can look like."""

    key: str
    path: str
    lang: str  # "fa" or "en": the language of its titles and tags
    n_train: int
    n_test: int
    n_new: int
    aspect: float  # drawn height / width
    colours: tuple[str, ...]
    usages: tuple[str, ...]
    features: tuple[tuple[str, float], ...]  # (feature key, probability)


CATEGORIES: tuple[Category, ...] = (
    Category("sneaker", "مد و پوشاک > کفش > کفش ورزشی", "fa", 61, 14, 8, 0.5,
             ("white", "black", "red", "blue", "grey", "navy", "green"), ("sports", "casual"),
             (("original_fa", 0.35), ("waterproof_fa", 0.15), ("leather_fa", 0.2))),
    Category("wallet", "مد و پوشاک > کیف > کیف پول", "fa", 46, 12, 7, 0.74,
             ("brown", "black", "red", "navy", "grey"), ("formal", "casual"),
             (("leather_fa", 0.55), ("original_fa", 0.3))),
    Category("tshirt", "مد و پوشاک > پوشاک > تی‌شرت", "fa", 56, 14, 8, 1.0,
             tuple(COLOURS), ("casual", "sports"), (("cotton_fa", 0.5), ("original_fa", 0.2))),
    Category("sunglasses", "مد و پوشاک > اکسسوری > عینک آفتابی", "fa", 44, 11, 7, 0.42,
             ("black", "brown", "red", "navy", "white", "green"), ("casual", "sports"),
             (("polarized_fa", 0.4), ("uv400_fa", 0.45), ("original_fa", 0.25))),
    Category("jeans", "Apparel > Bottomwear > Jeans", "en", 52, 13, 8, 1.4,
             ("blue", "navy", "black", "grey", "white"), ("casual", "formal"),
             (("slimfit", 0.45), ("stretch", 0.3), ("original", 0.15))),
    Category("watch", "Accessories > Watches", "en", 48, 12, 7, 2.0,
             ("black", "brown", "navy", "grey", "white", "green", "red"), ("formal", "sports", "casual"),
             (("waterproof", 0.45), ("leather", 0.3), ("original", 0.25))),
    Category("backpack", "Accessories > Bags > Backpacks", "en", 48, 12, 8, 1.2,
             ("black", "grey", "navy", "red", "green", "blue", "brown"), ("travel", "casual", "sports"),
             (("waterproof", 0.35), ("laptop", 0.4), ("original", 0.15))),
    Category("mug", "Home > Kitchen > Mugs", "en", 45, 12, 7, 1.0,
             tuple(COLOURS), ("casual", "travel"), (("dishwasher", 0.45), ("microwave", 0.3))),
)


# ---------------------------------------------------------------- colours and a drawing frame

def shade(c: RGB, f: float) -> RGB:
    """Scale a colour's brightness by f (clamped)."""
    return (min(255, max(0, round(c[0] * f))), min(255, max(0, round(c[1] * f))), min(255, max(0, round(c[2] * f))))


def mix(a: RGB, b: RGB, t: float) -> RGB:
    """Blend colour a towards b by t (0..1)."""
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t), round(a[2] + (b[2] - a[2]) * t))


def edge(c: RGB) -> RGB:
    """An outline colour that shows on both dark and light fills."""
    return shade(c, 0.62) if sum(c) > 180 else mix(c, (255, 255, 255), 0.18)


WHITE: RGB = (255, 255, 255)
DARK: RGB = (28, 28, 30)


@dataclass(slots=True)
class Box:
    """Maps unit coordinates (u, v in 0..1) of a product's bounding box to canvas pixels."""

    x0: float
    y0: float
    w: float
    h: float

    def p(self, u: float, v: float) -> tuple[float, float]:
        return (self.x0 + u * self.w, self.y0 + v * self.h)

    def pts(self, uv: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
        return [self.p(u, v) for u, v in uv]

    def rect(self, u0: float, v0: float, u1: float, v1: float) -> list[float]:
        (x0, y0), (x1, y1) = self.p(u0, v0), self.p(u1, v1)
        return [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]

    def lw(self, k: float) -> int:
        """A line width of k x the box's smaller side (at least 1 pixel)."""
        return max(1, round(min(self.w, self.h) * k))


@dataclass(slots=True)
class Spec:
    """What to draw: the product's fill colour, usage, features, a brand for logos, and its random stream."""

    rgb: RGB
    colour: str
    usage: str
    features: set[str]
    brand: str
    r: random.Random
    flip: bool = False
    notes: dict[str, str] = field(default_factory=dict)


_FONT = ImageFont.load_default_imagefont()  # Pillow's built-in bitmap font: the same on every machine


def paste_text(layer: Image.Image, text: str, centre: tuple[float, float], colour: RGB, height: float) -> None:
    """Draw a short Latin text (bitmap font, scaled to `height` pixels) centred at `centre`."""
    left, top, right, bottom = _FONT.getbbox(text)
    patch = Image.new("L", (right - left + 2, bottom - top + 2), 0)
    ImageDraw.Draw(patch).text((1 - left, 1 - top), text, fill=255, font=_FONT)
    scale = max(0.5, height / patch.height)
    size = (max(1, round(patch.width * scale)), max(1, round(patch.height * scale)))
    patch = patch.resize(size, Image.Resampling.BILINEAR)
    solid = Image.new("RGBA", size, (*colour, 255))
    layer.paste(solid, (round(centre[0] - size[0] / 2), round(centre[1] - size[1] / 2)), patch)


def dashed(d: ImageDraw.ImageDraw, pts: Sequence[tuple[float, float]], colour: RGB, width: int, dash: float) -> None:
    """A dashed polyline (stitching, zips)."""
    for (x0, y0), (x1, y1) in itertools.pairwise(pts):
        length = math.hypot(x1 - x0, y1 - y0)
        n = max(1, int(length / dash))
        for i in range(0, n, 2):
            t0, t1 = i / n, min(1.0, (i + 1) / n)
            d.line([(x0 + (x1 - x0) * t0, y0 + (y1 - y0) * t0), (x0 + (x1 - x0) * t1, y0 + (y1 - y0) * t1)],
                   fill=colour, width=width)


def arc_pts(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 12) -> list[tuple[float, float]]:
    """Points on an elliptical arc (angles in degrees, 0 = right, 90 = down)."""
    return [(cx + rx * math.cos(math.radians(a0 + (a1 - a0) * i / n)),
             cy + ry * math.sin(math.radians(a0 + (a1 - a0) * i / n))) for i in range(n + 1)]


# ---------------------------------------------------------------- the eight silhouettes

def draw_tshirt(d: ImageDraw.ImageDraw, layer: Image.Image, b: Box, s: Spec) -> None:
    """A flat-laid t-shirt: body, sleeves, round or V neck; sports ones get contrast sleeves or side stripes."""
    r, c = s.r, s.rgb
    bw, nw = r.uniform(0.27, 0.33), r.uniform(0.09, 0.13)
    vneck = r.random() < 0.3
    nd = r.uniform(0.15, 0.2) if vneck else r.uniform(0.05, 0.09)
    sl = r.uniform(0.14, 0.26)
    left = [(0.5 - nw, 0.03), (0.5 - bw - 0.05, 0.07), (0.02, 0.10 + sl), (0.16, 0.17 + sl), (0.5 - bw, 0.34),
            (0.5 - bw + r.uniform(-0.02, 0.02), 0.98)]
    right = [(1 - u, v) for u, v in reversed(left)]
    neck = arc_pts(0.5, 0.03, nw, nd, 15, 165, 10) if not vneck else [(0.5, 0.03 + nd)]
    outline = [*left, *right, *neck]
    d.polygon(b.pts(outline), fill=c, outline=edge(c), width=b.lw(0.012))
    trim = mix(c, WHITE, 0.5) if sum(c) < 300 else shade(c, 0.8)
    if s.usage == "sports":
        accent = WHITE if sum(c) < 450 else (200, 30, 40)
        if r.random() < 0.5:  # contrast raglan sleeves
            for sign in (0, 1):
                sleeve = [(0.5 - nw, 0.03), *left[1:5]]
                if sign:
                    sleeve = [(1 - u, v) for u, v in sleeve]
                d.polygon(b.pts(sleeve), fill=accent, outline=edge(c), width=b.lw(0.01))
        else:  # side stripes
            for u in (0.5 - bw + 0.03, 0.5 + bw - 0.03):
                d.line(b.pts([(u, 0.36), (u, 0.97)]), fill=accent, width=b.lw(0.035))
        trim = accent
    d.line(b.pts([*neck, (0.5 - nw, 0.03)] if vneck else [(0.5 + nw, 0.03), *neck, (0.5 - nw, 0.03)]),
           fill=trim, width=b.lw(0.03))
    for sleeve_end in ([(0.02, 0.10 + sl), (0.16, 0.17 + sl)], [(0.98, 0.10 + sl), (0.84, 0.17 + sl)]):
        d.line(b.pts(sleeve_end), fill=trim, width=b.lw(0.02))
    if r.random() < 0.45:  # chest print
        kind = r.choice(("circle", "text", "band"))
        ink = r.choice((WHITE, DARK, (220, 170, 40), (200, 40, 50)))
        if kind == "circle":
            d.ellipse(b.rect(0.4, 0.32, 0.6, 0.32 + 0.2 * b.w / b.h), fill=ink)
        elif kind == "text":
            paste_text(layer, s.brand.upper(), b.p(0.5, 0.42), ink, b.h * 0.08)
        else:
            d.rectangle(b.rect(0.5 - bw + 0.01, 0.45, 0.5 + bw - 0.01, 0.53), fill=ink)


def draw_sneaker(d: ImageDraw.ImageDraw, layer: Image.Image, b: Box, s: Spec) -> None:
    """A running shoe seen from the side: sole, upper, laces, a swoosh for sports ones."""
    r, c = s.r, s.rgb
    sole_h = r.uniform(0.18, 0.26) if s.usage == "sports" else r.uniform(0.1, 0.15)
    top = 0.96 - sole_h
    collar = r.uniform(0.18, 0.3)
    upper = [(0.03, top + 0.02), (0.02, collar + 0.05), (0.06, collar), (0.2, collar + 0.1), (0.3, collar + 0.04),
             (0.36, 0.04), (0.44, 0.08), (0.58, 0.3), (0.72, 0.44), (0.86, 0.52), (0.96, 0.6), (0.99, top + 0.02)]
    sole_c = r.choice((WHITE, WHITE, (235, 230, 215), DARK, (180, 120, 60)))
    if sole_c == c or (sum(c) > 650 and sum(sole_c) > 650):
        sole_c = DARK if r.random() < 0.5 else (200, 200, 200)
    d.polygon(b.pts(upper), fill=c, outline=edge(c), width=b.lw(0.02))
    d.rounded_rectangle(b.rect(0.01, top, 1.0, 0.97), radius=b.h * sole_h / 2.2, fill=sole_c,
                        outline=edge(sole_c), width=b.lw(0.02))
    if s.usage == "sports":  # tread line and swoosh
        tread = top + sole_h * 0.55
        d.line(b.pts([(0.05, tread), (0.97, tread)]), fill=shade(sole_c, 0.75), width=b.lw(0.02))
        bright = sum(c) >= 600
        accent = r.choice((DARK, (200, 40, 50)) if bright else (WHITE, DARK, (230, 120, 30), (40, 170, 200)))
        swoosh = [(0.14, top - 0.04), (0.5, top - 0.16), (0.82, 0.42), (0.55, top - 0.06), (0.2, top)]
        d.polygon(b.pts(swoosh), fill=accent)
    else:  # toe cap and a stitched quarter panel
        d.line(b.pts([(0.78, top + 0.01), (0.82, 0.5), (0.96, 0.6)]), fill=edge(c), width=b.lw(0.02))
        quarter = [(0.08, top - 0.05), (0.3, top - 0.1), (0.6, top - 0.08)]
        dashed(d, b.pts(quarter), shade(c, 0.7), b.lw(0.015), b.w * 0.02)
    lace = WHITE if sum(c) < 500 else DARK
    for i in range(r.randint(4, 6)):
        t = 0.12 + i * 0.15
        x, y = 0.36 + t * 0.36, 0.06 + t * 0.38
        d.line(b.pts([(x - 0.03, y + 0.06), (x + 0.05, y - 0.03)]), fill=lace, width=b.lw(0.035))
    d.polygon(b.pts([(0.02, collar + 0.05), (0.06, collar), (0.08, collar + 0.22), (0.03, collar + 0.25)]),
              fill=shade(c, 0.75))  # heel tab
    if "leather_fa" in s.features:
        dashed(d, b.pts([(0.05, top - 0.03), (0.97, top - 0.03)]), mix(c, WHITE, 0.5), b.lw(0.012), b.w * 0.015)


def draw_wallet(d: ImageDraw.ImageDraw, layer: Image.Image, b: Box, s: Spec) -> None:
    """A bifold wallet, closed (spine, snap tab or logo) or open (card slots, peeking cards)."""
    r, c = s.r, s.rgb
    leather = "leather_fa" in s.features
    stitch = mix(c, (230, 200, 150), 0.6)
    if r.random() < 0.35:  # open: two panels with card slots
        d.rounded_rectangle(b.rect(0.0, 0.05, 1.0, 0.95), radius=b.w * 0.04, fill=c, outline=edge(c), width=b.lw(0.015))
        d.line(b.pts([(0.5, 0.05), (0.5, 0.95)]), fill=shade(c, 0.65), width=b.lw(0.02))
        for panel in (0.04, 0.54):
            for k in range(3):
                y = 0.2 + k * 0.14
                card = r.choice(((40, 90, 170), (200, 170, 60), (150, 150, 155), (170, 40, 50), (40, 130, 90)))
                d.rectangle(b.rect(panel + 0.04, y - 0.07, panel + 0.38, y + 0.02), fill=card)
                d.rectangle(b.rect(panel, y, panel + 0.42, 0.9), fill=shade(c, 0.92 - 0.05 * k), outline=edge(c),
                            width=b.lw(0.01))
        if leather:
            dashed(d, b.pts([(0.03, 0.09), (0.97, 0.09), (0.97, 0.91), (0.03, 0.91), (0.03, 0.09)]), stitch,
                   b.lw(0.012), b.w * 0.02)
        return
    d.rounded_rectangle(b.rect(0.02, 0.06, 0.98, 0.94), radius=b.w * r.uniform(0.03, 0.08), fill=c, outline=edge(c),
                        width=b.lw(0.015))
    d.rectangle(b.rect(0.02, 0.1, 0.08, 0.9), fill=shade(c, 0.8))  # spine
    if leather:
        dashed(d, b.pts([(0.1, 0.12), (0.93, 0.12), (0.93, 0.88), (0.1, 0.88), (0.1, 0.12)]), stitch,
               b.lw(0.012), b.w * 0.02)
    if s.usage == "casual":  # snap tab
        d.rounded_rectangle(b.rect(0.66, 0.38, 1.0, 0.62), radius=b.h * 0.1, fill=shade(c, 0.85), outline=edge(c),
                            width=b.lw(0.012))
        d.ellipse(b.rect(0.84, 0.5 - 0.07 * b.w / b.h, 0.94, 0.5 + 0.07 * b.w / b.h), fill=(190, 190, 195),
                  outline=(110, 110, 115))
    elif r.random() < 0.6:  # small metal logo plate
        d.rectangle(b.rect(0.62, 0.76, 0.86, 0.82), fill=(200, 190, 150))
    if r.random() < 0.2:
        paste_text(layer, s.brand.upper(), b.p(0.5, 0.5), mix(c, WHITE, 0.45), b.h * 0.1)


def draw_sunglasses(d: ImageDraw.ImageDraw, layer: Image.Image, b: Box, s: Spec) -> None:
    """Sunglasses from the front: coloured frame, dark lenses (round, wayfarer, aviator, or a sports shield)."""
    r, c = s.r, s.rgb
    lens = r.choice(((38, 38, 42), (70, 50, 34), (44, 60, 52), (50, 80, 130)))
    fw = b.lw(r.uniform(0.07, 0.12))
    d.line(b.pts([(0.04, 0.22), (-0.01, 0.3)]), fill=c, width=fw)  # temple stubs
    d.line(b.pts([(0.96, 0.22), (1.01, 0.3)]), fill=c, width=fw)
    shine = mix(lens, WHITE, 0.35)
    if s.usage == "sports":  # one wrap-around shield
        shield = [(0.03, 0.15), (0.97, 0.15), (0.95, 0.6), (0.8, 0.85), (0.58, 0.8), (0.5, 0.6), (0.42, 0.8),
                  (0.2, 0.85), (0.05, 0.6)]
        d.polygon(b.pts(shield), fill=lens, outline=c, width=fw)
        d.rounded_rectangle(b.rect(0.01, 0.06, 0.99, 0.24), radius=fw, fill=c)
        d.polygon(b.pts([(0.44, 0.24), (0.56, 0.24), (0.52, 0.45), (0.48, 0.45)]), fill=c)  # nose bridge
        d.line(b.pts([(0.15, 0.7), (0.3, 0.3)]), fill=shine, width=b.lw(0.05))
        return
    shape = r.choice(("round", "wayfarer", "aviator"))
    gap = r.uniform(0.06, 0.12)
    for side in (0, 1):
        u0, u1 = (0.04, 0.5 - gap / 2) if side == 0 else (0.5 + gap / 2, 0.96)
        if shape == "round":
            box = b.rect(u0, 0.1, u1, 0.92)
            d.ellipse(box, fill=lens, outline=c, width=fw)
        else:
            inner, outer = (u1, u0) if side == 0 else (u0, u1)
            if shape == "wayfarer":
                pts = [(outer, 0.1), (inner, 0.12), (inner - (inner - outer) * 0.08, 0.82), ((u0 + u1) / 2, 0.92),
                       (outer + (inner - outer) * 0.1, 0.8)]
            else:
                pts = [(outer, 0.12), (inner, 0.12), (inner, 0.5), ((u0 + u1) / 2 + (inner - outer) * 0.2, 0.94),
                       (outer + (inner - outer) * 0.1, 0.7)]
            d.polygon(b.pts(pts), fill=lens, outline=c, width=fw)
        d.line(b.pts([(u0 + 0.06, 0.6), (u0 + 0.16, 0.3)]), fill=shine, width=b.lw(0.04))
    d.line(b.pts([(0.5 - gap / 2 - 0.01, 0.3), (0.5, 0.22), (0.5 + gap / 2 + 0.01, 0.3)]), fill=c, width=fw)
    if shape == "aviator":
        d.line(b.pts([(0.2, 0.12), (0.8, 0.12)]), fill=c, width=max(1, fw // 2))


def draw_jeans(d: ImageDraw.ImageDraw, layer: Image.Image, b: Box, s: Spec) -> None:
    """Jeans, front: waistband, two legs (narrower when slim fit), pockets, fly, orange stitching."""
    r, c = s.r, s.rgb
    slim = "slimfit" in s.features
    hem = r.uniform(0.14, 0.2) if slim else r.uniform(0.24, 0.3)
    crotch = r.uniform(0.3, 0.38)
    out = 0.06 if slim else 0.0  # slim legs end further in
    legs = [(0.12, 0.06), (0.88, 0.06), (0.95 - out, 1.0), (0.95 - out - hem, 1.0),
            (0.52, crotch), (0.48, crotch), (0.05 + out + hem, 1.0), (0.05 + out, 1.0)]
    d.polygon(b.pts(legs), fill=c, outline=edge(c), width=b.lw(0.015))
    d.rectangle(b.rect(0.12, 0.0, 0.88, 0.07), fill=shade(c, 0.85), outline=edge(c), width=b.lw(0.01))
    thread = (214, 140, 60) if s.colour != "white" else (150, 150, 160)
    if s.usage == "casual" and r.random() < 0.7:  # faded thighs, sometimes rips
        fade = mix(c, WHITE, 0.22)
        for u in (0.25, 0.75):
            d.ellipse(b.rect(u - 0.12, 0.14, u + 0.1, 0.5), fill=fade)
        if r.random() < 0.5:
            for u in (0.24, 0.76):
                for k in range(3):
                    y = 0.58 + k * 0.03
                    d.line(b.pts([(u - 0.06, y), (u + 0.05, y)]), fill=(235, 235, 230), width=b.lw(0.02))
    d.line(b.pts([(0.5, 0.07), (0.5, crotch - 0.02)]), fill=edge(c), width=b.lw(0.012))  # fly
    dashed(d, b.pts([(0.55, 0.07), (0.55, crotch - 0.08), (0.5, crotch - 0.02)]), thread, b.lw(0.01), b.h * 0.012)
    for sign in (-1, 1):  # front pockets
        pocket = arc_pts(0.5 + sign * 0.38, 0.07, 0.2, 0.14, 90 if sign < 0 else 180, 0 if sign < 0 else 90)
        d.line(b.pts(pocket), fill=edge(c), width=b.lw(0.012))
        seam = [(0.12, 0.07), (0.05, 1.0)] if sign < 0 else [(0.88, 0.07), (0.95, 1.0)]
        seam = [((u + 0.02) if sign < 0 else (u - 0.02), v) for u, v in seam]
        dashed(d, b.pts(seam), thread, b.lw(0.008), b.h * 0.012)
    for u in (0.2, 0.38, 0.62, 0.8):  # belt loops
        d.rectangle(b.rect(u - 0.015, 0.0, u + 0.015, 0.09), fill=shade(c, 0.75))
    d.ellipse(b.rect(0.47, 0.015, 0.53, 0.015 + 0.06 * b.w / b.h), fill=(184, 134, 70))
    if r.random() < 0.3:  # rolled cuffs
        for u0, u1 in ((legs[7][0], legs[6][0]), (legs[3][0], legs[2][0])):
            d.rectangle(b.rect(u0, 0.93, u1, 1.0), fill=mix(c, WHITE, 0.3))


def draw_watch(d: ImageDraw.ImageDraw, layer: Image.Image, b: Box, s: Spec) -> None:
    """A wrist watch: strap (the main colour) above and below a round or square case with dial and hands."""
    r, c = s.r, s.rgb
    sports = s.usage == "sports"
    sw = r.uniform(0.42, 0.5) if sports else r.uniform(0.32, 0.4)
    leather = "leather" in s.features
    bracelet = s.colour == "grey" and not leather and r.random() < 0.7
    for v0, v1 in ((0.0, 0.42), (0.58, 1.0)):
        taper = 0.04 if v0 == 0 else -0.04
        strap = [(0.5 - sw / 2 + max(taper, 0), v0), (0.5 + sw / 2 - max(taper, 0), v0),
                 (0.5 + sw / 2 + min(taper, 0), v1), (0.5 - sw / 2 - min(taper, 0), v1)]
        d.polygon(b.pts(strap), fill=c, outline=edge(c), width=b.lw(0.02))
        if bracelet:
            for k in range(1, 8):
                y = v0 + (v1 - v0) * k / 8
                d.line(b.pts([(0.5 - sw / 2, y), (0.5 + sw / 2, y)]), fill=shade(c, 0.7), width=b.lw(0.02))
        elif sports:
            for k in range(1, 6):
                y = v0 + (v1 - v0) * k / 6
                rib = [(0.5 - sw / 2 + 0.05, y), (0.5 + sw / 2 - 0.05, y)]
                d.line(b.pts(rib), fill=shade(c, 0.75), width=b.lw(0.03))
        if leather:
            for u in (0.5 - sw / 2 + 0.05, 0.5 + sw / 2 - 0.05):
                dashed(d, b.pts([(u, v0 + 0.01), (u, v1 - 0.01)]), mix(c, WHITE, 0.5), b.lw(0.015), b.h * 0.012)
    if not bracelet:
        for k in range(4):  # holes
            d.ellipse(b.rect(0.47, 0.72 + k * 0.06, 0.53, 0.72 + k * 0.06 + 0.06 * b.w / b.h), fill=shade(c, 0.4))
    metal = r.choice(((196, 196, 200), (205, 172, 92), (60, 60, 64)))
    if s.colour == "black" and r.random() < 0.5:
        metal = (50, 50, 54)
    cx, cy = b.p(0.5, 0.5)
    rad = b.w * (r.uniform(0.4, 0.48) if sports else r.uniform(0.33, 0.4))
    square = sports and r.random() < 0.35
    case = [cx - rad, cy - rad, cx + rad, cy + rad]
    crown = [cx + rad * 0.9, cy - rad * 0.15, cx + rad * 1.15, cy + rad * 0.15]
    d.rectangle(crown, fill=metal, outline=edge(metal))
    if square:
        d.rounded_rectangle(case, radius=rad * 0.3, fill=metal, outline=edge(metal), width=b.lw(0.02))
    else:
        d.ellipse(case, fill=metal, outline=edge(metal), width=b.lw(0.02))
    dial_c = r.choice(((245, 243, 235), (245, 243, 235), (25, 25, 30), (30, 50, 110), (20, 90, 70)))
    inner = rad * (0.72 if sports else 0.84)
    if sports:  # bezel
        bezel = [cx - rad * 0.9, cy - rad * 0.9, cx + rad * 0.9, cy + rad * 0.9]
        if square:
            d.rounded_rectangle(bezel, radius=rad * 0.28, fill=DARK)
        else:
            d.ellipse(bezel, fill=DARK)
    if square:
        d.rounded_rectangle([cx - inner, cy - inner, cx + inner, cy + inner], radius=inner * 0.25, fill=dial_c)
    else:
        d.ellipse([cx - inner, cy - inner, cx + inner, cy + inner], fill=dial_c)
    ink = DARK if sum(dial_c) > 400 else (235, 235, 235)
    for k in range(12):
        a = math.radians(k * 30)
        r0 = inner * (0.72 if k % 3 else 0.6)
        r1 = inner * 0.9
        d.line([cx + math.cos(a) * r0, cy + math.sin(a) * r0, cx + math.cos(a) * r1, cy + math.sin(a) * r1],
               fill=ink, width=b.lw(0.02 if k % 3 else 0.035))
    hour, minute = r.uniform(0, 360), r.uniform(0, 360)
    hands = [(hour, 0.5, 0.05, ink), (minute, 0.78, 0.03, ink)]
    if r.random() < 0.5:
        hands.append((r.uniform(0, 360), 0.85, 0.012, (210, 40, 40)))  # second hand
    for ang, length, width, colour in hands:
        a = math.radians(ang - 90)
        tip = (cx + math.cos(a) * inner * length, cy + math.sin(a) * inner * length)
        d.line([(cx, cy), tip], fill=colour, width=b.lw(width))


def draw_backpack(d: ImageDraw.ImageDraw, layer: Image.Image, b: Box, s: Spec) -> None:
    """A backpack from the front: handle loop, strap edges, rounded body, front pocket with zips."""
    r, c = s.r, s.rgb
    dark = shade(c, 0.7) if sum(c) > 120 else mix(c, WHITE, 0.15)
    d.arc(b.rect(0.38, 0.0, 0.62, 0.2), 180, 360, fill=dark, width=b.lw(0.04))  # handle
    for u0, u1 in ((0.02, 0.14), (0.86, 0.98)):  # shoulder straps peeking out
        d.rounded_rectangle(b.rect(u0, 0.14, u1, 0.8), radius=b.w * 0.04, fill=dark)
    travel = s.usage == "travel"
    if travel:  # side pockets
        for u0, u1 in ((0.02, 0.22), (0.78, 0.98)):
            d.rounded_rectangle(b.rect(u0, 0.5, u1, 0.95), radius=b.w * 0.06, fill=shade(c, 0.88), outline=edge(c),
                                width=b.lw(0.012))
    body = b.rect(0.1, 0.07, 0.9, 0.99)
    d.rounded_rectangle(body, radius=b.w * r.uniform(0.2, 0.32), fill=c, outline=edge(c), width=b.lw(0.015))
    zip_c = DARK if sum(c) > 200 else (150, 150, 150)
    d.arc(b.rect(0.16, 0.12, 0.84, 0.6), 200, 340, fill=zip_c, width=b.lw(0.015))
    pocket_top = r.uniform(0.5, 0.6)
    d.rounded_rectangle(b.rect(0.2, pocket_top, 0.8, 0.94), radius=b.w * 0.1, fill=shade(c, 0.86), outline=edge(c),
                        width=b.lw(0.012))
    dashed(d, b.pts([(0.25, pocket_top + 0.04), (0.75, pocket_top + 0.04)]), zip_c, b.lw(0.015), b.w * 0.015)
    d.rectangle(b.rect(0.7, pocket_top + 0.03, 0.74, pocket_top + 0.1), fill=(190, 190, 195))
    if travel:  # compression straps
        for v in (0.3, 0.42):
            d.rectangle(b.rect(0.1, v, 0.9, v + 0.025), fill=dark)
    if s.usage == "sports":
        accent = r.choice(((230, 200, 40), (240, 240, 240), (230, 110, 30)))
        d.polygon(b.pts([(0.12, 0.4), (0.88, 0.28), (0.88, 0.34), (0.12, 0.46)]), fill=accent)
    if r.random() < 0.5:  # logo patch
        d.rectangle(b.rect(0.4, 0.66, 0.6, 0.74), fill=mix(c, WHITE, 0.6) if sum(c) < 400 else DARK)
    elif r.random() < 0.4:
        paste_text(layer, s.brand.upper(), b.p(0.5, 0.72), mix(c, WHITE, 0.7), b.h * 0.06)


def draw_mug(d: ImageDraw.ImageDraw, layer: Image.Image, b: Box, s: Spec) -> None:
    """A ceramic mug (rim, handle, optional print) or a travel mug with a lid and grip band."""
    r, c = s.r, s.rgb
    if s.usage == "travel":
        d.rounded_rectangle(b.rect(0.2, 0.0, 0.8, 0.16), radius=b.w * 0.06, fill=(40, 40, 44))  # lid
        d.rectangle(b.rect(0.45, 0.03, 0.62, 0.06), fill=(90, 90, 95))
        body = [(0.18, 0.15), (0.82, 0.15), (0.74, 0.98), (0.26, 0.98)]
        d.polygon(b.pts(body), fill=c, outline=edge(c), width=b.lw(0.015))
        d.polygon(b.pts([(0.2, 0.42), (0.8, 0.42), (0.78, 0.6), (0.22, 0.6)]), fill=shade(c, 0.7))  # grip
        d.line(b.pts([(0.3, 0.2), (0.32, 0.9)]), fill=mix(c, WHITE, 0.3), width=b.lw(0.04))
        return
    hx0 = r.uniform(0.6, 0.66)
    d.ellipse(b.rect(hx0, 0.3, 0.98, 0.74), outline=shade(c, 0.9), width=b.lw(r.uniform(0.07, 0.1)))  # handle
    d.ellipse(b.rect(0.06, 0.86, 0.74, 0.98), fill=shade(c, 0.85))  # rounded foot
    d.rectangle(b.rect(0.06, 0.12, 0.74, 0.92), fill=c)
    d.line(b.pts([(0.06, 0.12), (0.06, 0.92)]), fill=edge(c), width=b.lw(0.015))
    d.line(b.pts([(0.74, 0.12), (0.74, 0.92)]), fill=edge(c), width=b.lw(0.015))
    d.ellipse(b.rect(0.06, 0.05, 0.74, 0.19), fill=shade(c, 0.92), outline=edge(c), width=b.lw(0.015))  # rim
    inside = r.choice(((70, 40, 25), shade(c, 0.6), (235, 235, 230)))
    d.ellipse(b.rect(0.1, 0.07, 0.7, 0.17), fill=inside)
    d.line(b.pts([(0.18, 0.24), (0.18, 0.86)]), fill=mix(c, WHITE, 0.35), width=b.lw(0.05))  # highlight
    kind = r.choice(("none", "none", "heart", "text", "band"))
    ink = r.choice((WHITE, DARK, (210, 50, 60))) if kind != "none" else c
    if kind == "heart":
        cx, cy = b.p(0.44, 0.5)
        k = b.w * 0.07
        d.ellipse([cx - 2 * k, cy - k, cx, cy + k], fill=ink)
        d.ellipse([cx, cy - k, cx + 2 * k, cy + k], fill=ink)
        d.polygon([(cx - 2 * k, cy + 0.2 * k), (cx + 2 * k, cy + 0.2 * k), (cx, cy + 2.4 * k)], fill=ink)
    elif kind == "text":
        paste_text(layer, s.brand.upper(), b.p(0.42, 0.52), ink, b.h * 0.08)
    elif kind == "band":
        d.rectangle(b.rect(0.06, 0.6, 0.74, 0.68), fill=ink)


DRAWERS: dict[str, Callable[[ImageDraw.ImageDraw, Image.Image, Box, Spec], None]] = {
    "tshirt": draw_tshirt, "sneaker": draw_sneaker, "wallet": draw_wallet, "sunglasses": draw_sunglasses,
    "jeans": draw_jeans, "watch": draw_watch, "backpack": draw_backpack, "mug": draw_mug,
}


# ---------------------------------------------------------------- a product photo

def render(cat: Category, spec: Spec, size: tuple[int, int], transparent: bool, seed: int) -> Image.Image:
    """Draw one product photo: tinted backdrop, shadow, the product (jittered, rotated, shaded), a little noise."""
    r = spec.r
    width, height = size
    big = (width * SS, height * SS)
    aspect = cat.aspect * r.uniform(0.85, 1.15)
    w = big[0] * (r.uniform(0.8, 0.95) if cat.aspect < 0.6 else r.uniform(0.62, 0.86))
    h = w * aspect
    if h > big[1] * 0.86:
        w, h = w * big[1] * 0.86 / h, big[1] * 0.86
    cx = big[0] / 2 + r.uniform(-0.08, 0.08) * big[0]
    cy = big[1] / 2 + r.uniform(-0.07, 0.07) * big[1]
    cx = min(max(cx, w / 2 + 2), big[0] - w / 2 - 2)
    cy = min(max(cy, h / 2 + 2), big[1] - h / 2 - 2)
    box = Box(cx - w / 2, cy - h / 2, w, h)

    layer = Image.new("RGBA", big, (0, 0, 0, 0))
    DRAWERS[cat.key](ImageDraw.Draw(layer), layer, box, spec)
    if spec.flip:
        layer = layer.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    bbox = layer.getbbox() or (0, 0, big[0], big[1])
    part = layer.crop(bbox).rotate(r.uniform(-7, 7), resample=Image.Resampling.BILINEAR, expand=True)
    layer = Image.new("RGBA", big, (0, 0, 0, 0))
    layer.paste(part, ((bbox[0] + bbox[2] - part.width) // 2, (bbox[1] + bbox[3] - part.height) // 2))

    # light from one side: a linear ramp over the product
    arr = np.asarray(layer, dtype=np.float32).copy()
    angle = r.uniform(0, 2 * math.pi)
    xs = (np.arange(big[0], dtype=np.float32) - cx) * math.cos(angle) / max(w, h)
    ys = (np.arange(big[1], dtype=np.float32) - cy) * math.sin(angle) / max(w, h)
    arr[..., :3] *= (1.0 + r.uniform(0.1, 0.3) * (ys[:, None] + xs[None, :]))[..., None]
    layer = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGBA")

    if transparent:
        canvas = Image.new("RGBA", big, (0, 0, 0, 0))
    else:
        tint = r.choice(((250, 250, 250), (244, 242, 238), (236, 240, 244), (240, 236, 230), (226, 228, 230),
                         (246, 238, 240)))
        tint = shade(tint, r.uniform(0.96, 1.02))
        canvas = Image.new("RGBA", big, (*tint, 255))
        if r.random() < 0.4:  # soft vertical gradient (studio sweep)
            grad = Image.linear_gradient("L").resize(big).point(lambda v: v * 0.12)
            canvas.paste((*shade(tint, 0.88), 255), (0, 0), grad)
    alpha = layer.getchannel("A")
    if r.random() < 0.7:  # drop shadow
        shadow = Image.new("RGBA", big, (0, 0, 0, 0))
        shadow.putalpha(alpha.point(lambda v: v * 0.3).filter(ImageFilter.GaussianBlur(4 * SS)))
        canvas.alpha_composite(shadow, (round(r.uniform(1, 4) * SS), round(r.uniform(2, 5) * SS)))
    canvas.alpha_composite(layer)
    if not transparent and r.random() < 0.08:  # shop badge in a corner
        bx = 6 * SS if r.random() < 0.5 else big[0] - 26 * SS
        ImageDraw.Draw(canvas).ellipse([bx, 6 * SS, bx + 20 * SS, 26 * SS], fill=(215, 35, 45, 255))
        paste_text(canvas, r.choice(("-20%", "NEW", "-35%")), (bx + 10 * SS, 16 * SS), WHITE, 6 * SS)
    img = canvas.resize(size, Image.Resampling.LANCZOS)
    if transparent:
        return img
    img = img.convert("RGB")
    rng = np.random.default_rng(seed)
    noisy = np.asarray(img, dtype=np.float32) + rng.normal(0.0, r.uniform(1.0, 2.5), (height, width, 1))
    return Image.fromarray(np.clip(noisy, 0, 255).round().astype(np.uint8), "RGB")


def image_bytes(img: Image.Image, fmt: str) -> bytes:
    """Encode an image the same way every time (no metadata)."""
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.save(buf, "JPEG", quality=JPEG_QUALITY, optimize=True)
    else:
        img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


# ---------------------------------------------------------------- titles and descriptions

FA_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
AR_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def model_code(r: random.Random) -> str:
    """A model code like A54, X7-220, RS3012."""
    letters = "".join(r.choice("ABCDEFGHKLMNPRSTVXZ") for _ in range(r.choice((1, 1, 2))))
    form = r.randrange(3)
    if form == 0:
        return f"{letters}{r.randint(2, 99)}"
    if form == 1:
        return f"{letters}{r.randint(1, 9)}-{r.randint(100, 990)}"
    return f"{letters}{r.randint(1000, 9999)}"


def fa_title(cat: Category, colour: str, usage: str, features: list[str], brand: str, r: random.Random) -> str:
    """A Persian title: product word (ZWNJ or spaced), gender, brand, model, features, colour, size."""
    if cat.key == "sneaker":
        head = r.choice(("کفش ورزشی", "کفش ورزشی", "کفش رانینگ", "کتانی", "کفش پیاده‌روی", "کفش پیاده روی")
                        if usage == "sports" else ("کفش ورزشی", "کفش اسپرت", "کتانی", "کفش روزمره", "اسنیکر"))
        extra = [f"سایز {r.randint(36, 45)}"] if r.random() < 0.4 else []
        gender = r.choice(("مردانه", "زنانه", "", "", "یونیسکس"))
    elif cat.key == "wallet":
        head = r.choice(("کیف پول", "کیف‌پول", "کیف پول", "کیف جیبی", "کیف‌ پول", "کیفپول"))
        extra = [r.choice(("مجلسی", "کلاسیک", "اداری"))] if usage == "formal" and r.random() < 0.5 else []
        if usage == "casual" and r.random() < 0.4:
            extra.append(r.choice(("دکمه‌دار", "دکمه دار", "اسپرت")))
        gender = r.choice(("مردانه", "زنانه", "", "مردانه"))
    elif cat.key == "tshirt":
        head = r.choice(("تی‌شرت", "تی شرت", "تیشرت", "تی‌شرت", "تی-شرت"))
        extra = [r.choice(("آستین کوتاه", "یقه گرد", "یقه هفت", ""))]
        if usage == "sports" and r.random() < 0.6:
            extra.append(r.choice(("ورزشی", "باشگاهی", "دری فیت")))
        if r.random() < 0.4:
            extra.append(f"سایز {r.choice(('S', 'M', 'L', 'XL', 'XXL', '2XL'))}")
        gender = r.choice(("مردانه", "زنانه", "", "بچگانه"))
    else:  # sunglasses
        head = r.choice(("عینک آفتابی", "عینک آفتابی", "عینک دودی", "عینک‌آفتابی"))
        extra = [r.choice(("ورزشی", "اسپرت", "دوچرخه سواری"))] if usage == "sports" and r.random() < 0.6 else []
        if usage == "casual" and r.random() < 0.3:
            extra.append(r.choice(("گرد", "خلبانی", "ویفرر", "کلاسیک")))
        gender = r.choice(("مردانه", "زنانه", "", ""))
    parts = [head, gender, brand if r.random() < 0.8 else ""]
    if r.random() < 0.7:
        parts.append(f"{r.choice(('مدل', 'کد', 'مدل'))} {model_code(r)}")
    parts += extra
    parts += [r.choice(FEATURES[f][1]) for f in features if r.random() < 0.6]
    if r.random() < 0.5:
        parts.append(("رنگ " if r.random() < 0.5 else "") + r.choice(COLOURS[colour][4]))
    title = " ".join(p for p in parts if p)
    if r.random() < 0.5:
        title = title.translate(FA_DIGITS)
    elif r.random() < 0.05:
        title = title.translate(AR_DIGITS)
    if r.random() < 0.06:  # Arabic keyboard letters, as some shops type them
        title = title.replace("ی", "ي").replace("ک", "ك")
    return title


def en_title(cat: Category, colour: str, usage: str, features: list[str], brand: str, r: random.Random) -> str:
    """An English title: brand, model, product words, features, colour, size."""
    if cat.key == "jeans":
        head = r.choice(("Jeans", "Denim Jeans", "Denim Trousers", "Jeans", "Denim Pants"))
        extra = [f"W{r.randint(28, 38)} L{r.choice((30, 32, 34))}"] if r.random() < 0.4 else []
        if "slimfit" not in features and r.random() < 0.4:
            extra.append(r.choice(("Regular Fit", "Straight Leg", "Relaxed Fit")))
        if usage == "casual" and r.random() < 0.4:
            extra.append(r.choice(("Distressed", "Washed", "Ripped")))
        gender = r.choice(("Men's", "Women's", "", "Mens"))
    elif cat.key == "watch":
        head = r.choice(("Watch", "Wrist Watch", "Wristwatch", "Analog Watch"))
        extra = [r.choice(("Chronograph", "Diver", "Sport"))] if usage == "sports" and r.random() < 0.6 else []
        if usage == "formal" and r.random() < 0.5:
            extra.append(r.choice(("Classic", "Dress", "Slim")))
        if r.random() < 0.3:
            extra.append(f"{r.choice((36, 38, 40, 42, 44))}mm")
        gender = r.choice(("Men's", "Women's", "", "Unisex"))
    elif cat.key == "backpack":
        head = r.choice(("Backpack", "Rucksack", "Backpack", "Daypack", "School Backpack"))
        extra = [f"{r.choice((18, 20, 25, 30, 35, 40))}L"] if r.random() < 0.5 else []
        if usage == "travel" and r.random() < 0.6:
            extra.append(r.choice(("Travel", "Hiking", "Weekender")))
        if usage == "sports" and r.random() < 0.6:
            extra.append(r.choice(("Gym", "Sports", "Cycling")))
        gender = ""
    else:  # mug
        head = r.choice(("Travel Mug", "Tumbler", "Insulated Mug")) if usage == "travel" else r.choice(
            ("Mug", "Coffee Mug", "Ceramic Mug", "Tea Cup", "Mug"))
        extra = [r.choice(("350ml", "11oz", "450 ml", "15 oz"))] if r.random() < 0.5 else []
        gender = ""
    parts = [brand if r.random() < 0.85 else "", model_code(r) if r.random() < 0.5 else "", gender, *extra, head]
    feats = [r.choice(FEATURES[f][1]) for f in features if r.random() < 0.6]
    if feats:
        parts += [r.choice(("-", ",", "with", "")), *feats]
    if r.random() < 0.5:
        parts += [r.choice(("-", "|", ",", "")), r.choice(COLOURS[colour][3])]
    title = " ".join(p for p in parts if p).replace(" ,", ",")
    if r.random() < 0.06:
        title = title.upper()
    return title


FA_DESC = ("{head} با کیفیت عالی و قیمت مناسب.", "ارسال سریع به سراسر کشور. {head} {extra}",
           "این {head} مناسب استفاده {usage} است.", "{head} — {extra} — ضمانت اصالت کالا")
EN_DESC = ("A {head} for {usage} use. {extra}", "Great quality {head}. Free returns within 7 days.",
           "{extra} Ideal for everyday {usage} wear.", "Our best-selling {head}: {extra}")


def description(cat: Category, usage: str, features: list[str], r: random.Random) -> str:
    """A short description, sometimes with HTML markup and entities; may name features the title left out."""
    head = cat.path.split(" > ")[-1]
    names = [FEATURES[f][0] for f in features if r.random() < 0.5]
    if cat.lang == "fa":
        extra = "، ".join(names) if names else "طراحی شیک"
        text = r.choice(FA_DESC).format(head=head, extra=extra, usage=USAGES[usage][1])
    else:
        extra = ", ".join(names) if names else "Comfortable & durable."
        text = r.choice(EN_DESC).format(head=head.lower().rstrip("s"), extra=extra, usage=USAGES[usage][0].lower())
    if r.random() < 0.35:
        style = r.randrange(3)
        if style == 0:
            text = f"<p>{text.replace('&', '&amp;')}</p>"
        elif style == 1:
            text = "<ul>" + "".join(f"<li>{s.strip()}</li>" for s in text.split(".") if s.strip()) + "</ul>"
        else:
            text = f"<div><b>{head}</b><br/>{text}&nbsp;</div>"
    return text


# ---------------------------------------------------------------- products

@dataclass(slots=True)
class Item:
    """One generated product row (labels kept even when not written, e.g. for new/)."""

    id: str
    cat: Category
    colour: str
    usage: str
    features: list[str]
    title: str = ""
    description: str = ""
    image: str = ""

    def tags(self) -> str:
        fa = self.cat.lang == "fa"
        colour = COLOURS[self.colour][1 if fa else 0]
        usage = USAGES[self.usage][1 if fa else 0]
        parts = [f"{'رنگ' if fa else 'color'}: {colour}", f"{'کاربرد' if fa else 'usage'}: {usage}"]
        parts += [f"{'ویژگی' if fa else 'feature'}: {FEATURES[f][0]}" for f in self.features]
        return "|".join(parts)

    def row(self, labelled: bool) -> dict[str, str]:
        return {"id": self.id, "title": self.title, "description": self.description, "image": self.image,
                "category": self.cat.path if labelled else "", "tags": self.tags() if labelled else ""}


def make_item(cat: Category, item_id: str, r: random.Random) -> Item:
    """Draw the labels and the text of one product."""
    colour = r.choice(cat.colours)
    usage = r.choice(cat.usages)
    features = [f for f, p in cat.features if r.random() < p]
    if cat.key == "watch" and usage == "sports" and "leather" in features:
        features.remove("leather")
    item = Item(item_id, cat, colour, usage, features)
    if cat.lang == "fa":
        brand = r.choice(BRANDS_FA_LATIN) if r.random() < 0.15 else r.choice(BRANDS_FA)
        item.title = fa_title(cat, colour, usage, features, brand, r)
    else:
        item.title = en_title(cat, colour, usage, features, r.choice(BRANDS_EN), r)
    if r.random() < 0.05:
        item.title = "  " + item.title if r.random() < 0.5 else item.title.replace(" ", "  ", 1) + " "
    if r.random() < 0.4:
        item.description = description(cat, usage, features, r)
    return item


def photo(item: Item, seed: int, r: random.Random, name: str, png: bool, transparent: bool) -> bytes:
    """Render the product's picture and return the encoded file."""
    spec = Spec(COLOURS[item.colour][2], item.colour, item.usage, set(item.features),
                r.choice(BRANDS_EN if item.cat.lang == "en" else BRANDS_FA_LATIN), r)
    jitter = [max(0, min(255, v + round(r.gauss(0, 7)))) for v in spec.rgb]
    spec.rgb = shade((jitter[0], jitter[1], jitter[2]), r.uniform(0.9, 1.08))
    spec.flip = item.cat.key in ("sneaker", "mug") and r.random() < 0.5
    size = r.choices(((120, 160), (150, 150), (160, 120)), weights=(8, 1.5, 0.5 if item.cat.aspect > 1 else 1.5))[0]
    img = render(item.cat, spec, size, transparent, seed=zlib.crc32(f"{seed}:{name}".encode()))
    if png and not transparent and r.random() < 0.5:
        img = img.quantize(64, dither=Image.Dither.NONE)  # a palette PNG, as some shops upload
    return image_bytes(img, "PNG" if png else "JPEG")


def build(seed: int = SEED) -> dict[str, bytes]:
    """Make every file of the demo in memory: relative path -> bytes."""
    files: dict[str, bytes] = {}
    master = random.Random(seed)
    schedule = [cat for cat in CATEGORIES for _ in range(cat.n_train + cat.n_test)]
    master.shuffle(schedule)
    items: list[Item] = []
    for i, cat in enumerate(schedule, start=1):
        r = random.Random(f"{seed}:item:{i}")
        item = make_item(cat, f"dm-{i:04d}", r)
        shape = r.random()
        if shape < 0.07:
            item.title = ""  # image only
        elif shape < 0.11:
            item.image = "-"  # title only
        if item.image != "-":
            png = r.random() < 0.03
            item.image = f"images/{item.id}.{'png' if png else 'jpg'}"
            files[item.image] = photo(item, seed, r, item.image, png, transparent=png and r.random() < 0.5)
        else:
            item.image = ""
        items.append(item)
    test_ids: set[str] = set()
    for cat in CATEGORIES:
        pool = [it.id for it in items if it.cat is cat]
        test_ids.update(master.sample(pool, cat.n_test))
    for name, chosen in (("train.csv", [it for it in items if it.id not in test_ids]),
                         ("test.csv", [it for it in items if it.id in test_ids])):
        files[name] = csv_bytes([it.row(labelled=True) for it in chosen])

    new_schedule = [cat for cat in CATEGORIES for _ in range(cat.n_new)]
    master.shuffle(new_schedule)
    number = 4100
    new_rows: list[dict[str, str]] = []
    for i, cat in enumerate(new_schedule, start=1):
        r = random.Random(f"{seed}:new:{i}")
        number += r.randint(1, 40)
        png = i % 12 == 5
        name = f"scan_{i:02d}.png" if png else f"IMG_{number}.jpg"
        item = make_item(cat, name, r)
        item.image = f"new/{name}"
        files[item.image] = photo(item, seed, r, item.image, png, transparent=png and i % 24 == 5)
        if r.random() < 0.5:
            new_rows.append({**item.row(labelled=False), "description": ""})
    files["new.csv"] = csv_bytes(new_rows)
    files["README.md"] = README.encode()
    return files


def csv_bytes(rows: list[dict[str, str]]) -> bytes:
    """UTF-8 CSV with the canonical tagkit columns, \\n line ends."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


README = """\
# Demo catalogue

A small made-up bilingual catalogue for trying tagkit without any real data: 8 categories (4 with Persian
names and tags, 4 English), pictures drawn with Pillow, titles built from templates and invented brands.
It was made by `tools/make_demo.py`; do not edit these files by hand. Regenerate (byte-identical) with

    python tools/make_demo.py            # writes examples/demo/

- `train.csv` (400 products) and `test.csv` (100 held-out products, labelled, for `tagkit eval`):
  `id,title,description,image,category,tags`; `category` is `A > B > C`, `tags` are `name: value` pairs
  joined by `|` (a colour, a usage, and 0-3 features); `image` is relative to this folder (`images/`).
  Some products have no title (image only), some no image (title only); a few descriptions hold HTML.
- `new/`: 60 unlabelled pictures for `tagkit predict new/`; `new.csv` gives titles for about half of them
  (`id` = file name inside `new/`, category and tags left empty).
- Most pictures are 120x160 JPEGs; a few are PNGs (palette, or RGBA with a transparent background).
"""


def write(out: Path, files: dict[str, bytes]) -> None:
    """Replace the demo in `out` with `files` (old generated images are removed first)."""
    for sub in ("images", "new"):
        folder = out / sub
        if folder.is_dir():
            for old in folder.iterdir():
                if old.suffix.lower() in (".jpg", ".png") and old.is_file():
                    old.unlink()
    for rel, data in sorted(files.items()):
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def main(argv: list[str] | None = None) -> int:
    """Command line: write the demo catalogue."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: examples/demo)")
    parser.add_argument("--seed", type=int, default=SEED, help=f"random seed (default: {SEED})")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    files = build(args.seed)
    write(args.out, files)
    total = sum(len(b) for b in files.values())
    print(f"wrote {len(files)} files ({total / 1e6:.2f} MB) to {args.out} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
