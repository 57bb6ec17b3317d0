"""Digit images drawn with a font, the way a user's photo or drawing might arrive:
dark ink on light paper, any size and position, RGB or grey, PNG, JPEG or BMP."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont


def render_digits(folder: Path, per_digit: int = 6, seed: int = 7) -> list[tuple[Path, int]]:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for digit in range(10):
        for k in range(per_digit):
            width, height = rng.choice([(60, 60), (100, 80), (200, 260), (400, 300)])
            size = int(rng.choice([28, 40, 64, 120]) * max(width, height) / 100 * rng.uniform(0.6, 1.0))
            font = ImageFont.load_default(size=size)  # Pillow's own font: no system fonts needed
            stroke = int(size * rng.choice([0, 0.03, 0.06]))  # pen weight grows with the writing
            paper = rng.choice([(255, 255, 255), (235, 232, 220), (250, 250, 245)])
            ink = rng.choice([(0, 0, 0), (20, 30, 90), (60, 60, 60)])
            image = Image.new("RGB", (width, height), paper)
            draw = ImageDraw.Draw(image)
            box = draw.textbbox((0, 0), str(digit), font=font, stroke_width=stroke)
            x = rng.uniform(0, max(0, width - (box[2] - box[0]))) - box[0]
            y = rng.uniform(0, max(0, height - (box[3] - box[1]))) - box[1]
            draw.text((x, y), str(digit), font=font, fill=ink, stroke_width=stroke, stroke_fill=ink)
            if rng.random() < 0.3:
                image = image.convert("L")
            path = folder / f"digit{digit}_{k}.{rng.choice(['png', 'jpg', 'bmp'])}"
            image.save(path)
            made.append((path, digit))
    return made
