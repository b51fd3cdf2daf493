"""The web console: its page, API, feed, hints and support, and what each signed-in person may see there
(who is signed in is ``bot.web_auth``'s)."""
