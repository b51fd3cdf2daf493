"""The dashboard's DAG: the layout and SVG of ``bot.drawing.dag_layout`` (shared with the chat's PNG)."""

from bot.drawing.dag_layout import Node, Placed, depths, layout, nodes_from, render_svg

__all__ = ["Node", "Placed", "depths", "layout", "nodes_from", "render_svg"]
