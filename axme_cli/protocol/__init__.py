"""Pure wire-level definitions shared by the client and the runtime. Imports nothing of ours."""
