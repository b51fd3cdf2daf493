"""The DAG as a PNG for chat: the dashboard's layout drawn by Pillow, one box per step in its state's colour."""

from __future__ import annotations

import io

from PIL import Image

from bot.drawing.dag_layout import NODE_H, PAD, layout, nodes_from
from bot.drawing.dag_png import FILL, SCALE, render_png
from engine.loader import load_text
from tests.test_dashboard import FANOUT


def test_each_node_is_drawn_in_its_states_colour() -> None:
    steps = load_text(FANOUT, "fanout.yaml").spec.steps
    nodes = nodes_from([("list", None, "succeeded", None), ("broken", None, "failed", None)])
    png = render_png(steps, nodes, "fanout · run abc · failed")
    image = Image.open(io.BytesIO(png)).convert("RGB")
    head = 30
    for placed in layout(steps):
        status = nodes[placed.step_id].status if placed.step_id in nodes else "pending"
        # A point inside the box, right of its text: the fill colour.
        x, y = (placed.x + 150) * SCALE, (placed.y + head + NODE_H // 2) * SCALE
        want = FILL[status].lstrip("#")
        assert image.getpixel((x, y)) == tuple(int(want[i : i + 2], 16) for i in (0, 2, 4)), placed.step_id
    assert image.height == (max(p.y for p in layout(steps)) + NODE_H + PAD + head) * SCALE
