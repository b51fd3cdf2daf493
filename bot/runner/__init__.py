"""The remote runner: ``switchboard runner`` connects out to a server, takes step jobs for its labels and
runs them with the engine's own activities. It holds no chat token and opens no database.

May import only engine (the activities) and the bottom layer; never storage, runtime or the API.
"""
