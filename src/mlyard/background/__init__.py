"""Work the server process runs besides answering requests: the scheduler and the local agents."""
