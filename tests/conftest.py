"""Test-suite setup for in-process pytester runs."""

# pytester's in-process runs forget modules first imported inside them, and torch's
# lazily imported compiler stack registers native operators that cannot be registered
# twice; importing it once up front keeps it out of every inner run's import.
try:
    import torch._dynamo  # noqa: F401
except ImportError:  # the scoring tests also run where torch is not installed
    pass
