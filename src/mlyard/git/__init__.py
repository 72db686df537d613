"""Git adapter: bare repositories on disk, push descriptions, and smart HTTP through `git http-backend`."""
