import os

# Before anything imports axme_cli: every value engine/codec.py's ``shared`` gives from its memo is checked against
# its text (a caller that changed a shared value fails the test), in this process and in the runtimes it starts.
os.environ.setdefault("AXME_CHECK_SHARED", "1")
