"""The dque contract suite: one set of tests that every backend passes (see backends.py)."""
