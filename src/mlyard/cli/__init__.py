"""The `mlyard` command line: thin Typer commands over the REST client and the offline libraries."""
