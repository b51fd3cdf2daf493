"""Pictures of a run: the DAG's layout (pure, from the workflow's ``needs``), drawn as SVG for the
dashboard and as PNG (Pillow) for chat. Imports only ``engine``; the dashboard, the runtime and the
platforms all draw through it."""
