"""The web UI served at `/`: read-only pages over the same services as the API (server-rendered with
Jinja, no JavaScript). Sign-in takes a personal access token, kept in an HttpOnly, SameSite=Strict
cookie and checked again on every request, so revoking the token signs the browser out at once."""
