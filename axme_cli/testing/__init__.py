"""`axme scenarios test`: scenario bundles tested against a runtime, with stand-in agents (runner.py)."""
