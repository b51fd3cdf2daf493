"""Conversations as stored: their tables, typed rows, the state machine and the store.

The state machine lives with the store because every transition is a compare-and-set the store enforces.
"""
