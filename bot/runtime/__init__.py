"""The runtime: live runs, the alarm clock, sub-workflows, the event hub, run views and status cards.

May import approvals, delivery, storage, the bottom layer, engine and cards; never conversations,
handlers or platforms.
"""
