"""Storage: every SQL statement, the tables, the database connection and the group-commit journal.

May import only the bottom layer (config, errors, identity), engine and cards.
"""
