"""The runtime: live runs, the alarm clock, sub-workflows, the event hub, run views, status cards and
the orphaned step programs a crash left.

May import approvals, delivery, storage, the bottom layer, engine and cards; never conversations,
handlers or platforms.
"""
