"""Approvals: the store (votes, revisions, deadlines), the pure policy (who may vote, quorum, veto),
card views and chat presence.

May import delivery, storage, the bottom layer (config, errors, identity), engine and cards.
"""
