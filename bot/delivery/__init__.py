"""Delivery: the outbox that posts and edits cards exactly once, and the adapter contract it delivers through.

May import storage, the bottom layer and cards.
"""
