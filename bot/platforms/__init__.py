"""The chat platforms: slack/, discord/ and console/, each an adapter with its listeners and messages.

Each gets a narrow PlatformContext, never the whole process. May import handlers and everything below;
one platform never imports another.
"""
