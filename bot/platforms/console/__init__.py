"""The local web console: a trusted dev surface on loopback, with its page, feed, hints and support."""
