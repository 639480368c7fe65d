"""Reconcile stages: read the live state, apply the desired objects, compute and write status."""
