"""API routers, one module per noun."""
