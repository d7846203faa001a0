"""The REST API under /api/: the pages' services and access helpers, spoken in JSON."""
