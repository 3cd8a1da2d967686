"""`python -m modint.cli` (and `accelerate launch -m modint.cli`) runs the command line."""

from modint.cli import main

main()
