"""Data shipped with the package: the rate card, node facts and the sources they are built from."""
