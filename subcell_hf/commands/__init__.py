"""One module per `subcell-hf` command: `add_arguments(parser)` and `run(args) -> int`."""
