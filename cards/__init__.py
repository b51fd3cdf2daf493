"""Platform-neutral message cards and their Slack, Discord and HTML renderers.

The chat layer fills this package; the engine and the CLI do not depend on it.
"""
