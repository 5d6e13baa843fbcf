"""`python -m streams.cli` runs the `loyalty` command."""

from streams.cli import main

main()
