"""`python -m extractor.cli`: the same as the `jobruns` command."""

from extractor.cli import run

run()
