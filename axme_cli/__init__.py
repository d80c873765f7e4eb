"""axme: the CLI and local runtime for the AXP intent protocol."""

__version__ = "0.1.0"
