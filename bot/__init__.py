"""Switchboard's process: one folder per concern, imports pointing down the layers (see ARCHITECTURE.md).

process and cli -> platforms -> handlers -> conversations -> runtime -> approvals -> delivery -> storage ->
config, errors, identity -> engine and cards.
"""
