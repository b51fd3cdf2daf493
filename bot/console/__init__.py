"""The built-in web console: a chat workspace served by Switchboard itself, so it runs with no tokens."""
