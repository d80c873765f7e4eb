"""The AXP runtime: `axme dev` (SQLite) and, later, `axme server` (PostgreSQL)."""
