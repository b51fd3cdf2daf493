"""The REST API under ``/api/v1``: a typed route table, its OpenAPI 3.1 document and docs page, problem+json
errors, and the endpoints for workflows, runs and approvals.

It sits beside ``bot.platforms`` and below ``bot.process``: it may import handlers, the runtime, approvals,
storage and web_auth, never a chat platform. Every action goes through the same rules as chat (the
handlers' permission checks, the approval store's compare-and-set) for the caller's identity.
"""
