"""Discord: the discord.py client, its command tree, interactions, messages and views."""
