"""Migration scripts; HEAD names the newest, so start-up can skip Alembic when the database is current."""

HEAD = "0025"
