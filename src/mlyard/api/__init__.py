"""The REST API under /api/v1: thin routes over the services."""

PREFIX = "/api/v1"  # the clients' side of it is mlyard.client.API
