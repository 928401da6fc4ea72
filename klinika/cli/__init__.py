"""The ``klinika`` command. May import everything; builds a Runtime per command."""
