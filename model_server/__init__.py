"""The modelpack model server: many distinct TorchScript models per process behind Open Inference Protocol V2.

Nothing heavy happens at import time: ``create_app`` (in :mod:`model_server.app`) builds the app and the
lifespan registers models, so importing this package stays cheap for the CLI.
"""
