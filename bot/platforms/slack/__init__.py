"""Slack: the Bolt app (HTTP or Socket Mode), its listeners, messages, errors and identity mapping."""
