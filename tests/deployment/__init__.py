"""A whole production deployment in processes, for tests that need real ones."""
