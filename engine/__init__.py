"""Switchboard's workflow engine: a pure core that decides, and activities that act."""
