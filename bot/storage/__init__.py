"""Storage: SQLAlchemy tables, the database connection and the group-commit journal."""
