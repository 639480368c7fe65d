"""The `modelpack` command line: one module per subcommand, each with a ``register(subparsers)``."""
