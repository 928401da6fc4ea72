"""``python -m klinika`` runs the command line."""

from klinika.cli.main import main

main()
