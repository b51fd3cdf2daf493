"""A run's DAG as a PNG for chat (Slack and Discord uploads, the console's inline image): the dashboard's
layout (``dag_layout``) drawn with Pillow, in the dashboard's colours, at twice the size for sharp text."""

from __future__ import annotations

import functools
import io
from collections.abc import Mapping

from PIL import Image, ImageDraw, ImageFont

from bot.drawing.dag_layout import NODE_H, NODE_W, PAD, STATES, Node, layout
from engine.graph import HasNeeds

SCALE = 2
MAX_NODES = 200  # a bigger graph is drawn to its first 200 steps: a chat image is for a glance
FILL = {
    "pending": "#eaeef2",
    "running": "#cfe2ff",
    "waiting": "#fff1b8",
    "succeeded": "#c8f0d2",
    "failed": "#ffd3d3",
    "skipped": "#f6f8fa",
    "cancelled": "#f6f8fa",
}
STROKE = {"running": "#0b57d0", "failed": "#a40e26"}
INK, LINE = "#1b1f24", "#57606a"


def render_png(steps: Mapping[str, HasNeeds], nodes: Mapping[str, Node], title: str) -> bytes:
    """The DAG as PNG bytes, a title line above it."""
    kept = dict(list(steps.items())[:MAX_NODES])
    placed = layout(kept)
    head = 30
    width = max((p.x + NODE_W for p in placed), default=0) + PAD
    height = max((p.y + NODE_H for p in placed), default=0) + PAD + head
    image = Image.new("RGB", (max(width, 320) * SCALE, height * SCALE), "white")
    draw = ImageDraw.Draw(image)
    big, small = _font(15), _font(12)
    draw.text((PAD * SCALE, 8 * SCALE), _clip(title, 80), fill=INK, font=_font(16))
    where = {p.step_id: p for p in placed}
    for step_id, step in kept.items():
        for need in dict.fromkeys(step.needs):
            if need in where:
                start, end = where[need], where[step_id]
                x1, y1 = start.x + NODE_W, start.y + NODE_H // 2 + head
                x2, y2 = end.x, end.y + NODE_H // 2 + head
                middle = (x1 + x2) // 2
                points = [(x1, y1), (middle, y1), (middle, y2), (x2, y2)]
                draw.line([(x * SCALE, y * SCALE) for x, y in points], fill=LINE, width=2 * SCALE)
                draw.polygon(
                    [
                        ((x2 - 8) * SCALE, (y2 - 5) * SCALE),
                        (x2 * SCALE, y2 * SCALE),
                        ((x2 - 8) * SCALE, (y2 + 5) * SCALE),
                    ],
                    fill=LINE,
                )
    for p in placed:
        node = nodes.get(p.step_id, Node())
        status = node.status if node.status in STATES else "pending"
        box = [p.x * SCALE, (p.y + head) * SCALE, (p.x + NODE_W) * SCALE, (p.y + head + NODE_H) * SCALE]
        wide = 3 if status in STROKE else 1
        draw.rounded_rectangle(
            box, radius=8 * SCALE, fill=FILL[status], outline=STROKE.get(status, LINE), width=wide * SCALE
        )
        draw.text(((p.x + 10) * SCALE, (p.y + head + 7) * SCALE), _clip(p.step_id, 20), fill=INK, font=big)
        draw.text(((p.x + 10) * SCALE, (p.y + head + 27) * SCALE), node.label, fill=INK, font=small)
    out = io.BytesIO()
    # zlib's default level: optimize=True (level 9 and more passes) made the file about 5% smaller and
    # took 3 times as long (30 ms against 10 ms for two steps), in the commit that ends a chat run, on
    # the event loop, where every request waiting behind it waited that long too.
    image.save(out, format="PNG")
    return out.getvalue()


@functools.cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow's own font (no system fonts needed): scalable when Pillow has FreeType, as its wheels do.
    return ImageFont.load_default(size=size * SCALE)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
