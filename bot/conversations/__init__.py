"""Conversations: the AI assistant, the handover to human agents, the queue, the relay and their records.

May import runtime and everything below it; never handlers or platforms.
"""
