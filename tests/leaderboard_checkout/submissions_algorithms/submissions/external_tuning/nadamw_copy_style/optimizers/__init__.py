"""Optimizers vendored inside the submission folder, imported as the top-level package `optimizers`."""
