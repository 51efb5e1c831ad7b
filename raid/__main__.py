"""`python -m raid`: the same as the `raid` command."""

from raid.cli import main

main()
