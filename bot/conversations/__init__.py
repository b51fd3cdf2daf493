"""Conversations: the AI assistant, the handover to human agents, the queue, the relay and their records."""
