"""The runtime's logic: what happens to intents. Operations run inside store transactions."""
