"""Plain networks that methods use as black boxes or as sub-modules of an algorithm."""
