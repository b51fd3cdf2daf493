"""What starts a workflow besides a person: signed webhooks (``POST /hooks/NAME``) and cron schedules.

Below ``bot.platforms`` and ``bot.api``, beside ``bot.web_auth``: it imports the runtime, storage, the engine
and the layers under them, never a platform. ``install.install_triggers`` is the one call a process makes.
"""
