"""Switchboard's process: configuration, storage, the runtime, the scheduler and the CLI."""
