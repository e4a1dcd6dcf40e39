"""One module per `subcell-hf` command: a `Config` dataclass (its fields are the flags, parsed by draccus in
`subcell_hf.cli`) and `run(config) -> int`. The modules import nothing heavy at load time: `--help` stays fast."""
