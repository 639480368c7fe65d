"""Pure functions from the API types (and settings) to the Kubernetes objects the operator wants to exist.

Nothing here talks to the API server: every builder is a function of its arguments, so the whole
desired state of a pack can be unit-tested and diffed.
"""
