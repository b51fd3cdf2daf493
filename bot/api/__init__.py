"""The REST API under /api/v1: typed models, OpenAPI 3.1, problem+json errors; the same rules as chat."""
