"""The REST API under /api/v1: thin routes over the services."""
