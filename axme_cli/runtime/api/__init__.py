"""HTTP routes only: parse, authorise, call the engine, shape the answer."""
