"""Chat handlers: slash commands, button actions and messages, each a small platform-neutral function.

The chat layer fills this package; the engine and the CLI do not depend on it.
"""
