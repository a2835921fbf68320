"""The kernel: the supervisor, input/output runners and analysis worker processes."""
