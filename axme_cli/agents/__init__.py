"""Agents that ship with axme: the runner behind `axme agents run`, and the demo services."""
