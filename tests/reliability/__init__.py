"""Reliability proof (issue 8): crash matrix, storage faults, CLI file safety. Marked ``reliability``; the quick
suite can leave them out with ``-m "not reliability"``, CI runs them."""
