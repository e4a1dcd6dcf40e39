"""`subcell-hf <command> ...`: a thin front to the Python API.

The first word names the command; the rest is parsed by draccus into the command's config dataclass (`Config` in
`subcell_hf/commands/<name>.py`), whose fields and docstrings are the flags and their help:

    subcell-hf embed --model ./converted --inputs manifest.csv --output results --crop.size 128 --batch_size 32
    subcell-hf embed --config_path embed.yaml --batch_size 32     # a YAML preset, overridden by flags

Flags are the field names (`--batch_size`), nested sections are dotted (`--crop.size`), booleans take a value
(`--overwrite true`), lists are YAML lists (`--formats "[h5ad, parquet]"`). A command's module (and what it
imports: torch, transformers) is imported only when that command is named, and the configs import nothing heavy,
so `subcell-hf --help` and `subcell-hf <command> --help` answer in a fraction of a second.
"""

from __future__ import annotations

import importlib
import sys

#: command name -> (module under subcell_hf.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "convert": ("convert", "convert original SubCell .pth checkpoints into a save_pretrained folder"),
    "synth": ("synth", "write a synthetic HPA-like dataset: fields of view, cell masks and a manifest"),
    "shards": ("shards", "crop cells from fields of view into WebDataset shards of antibody records"),
    "embed": ("embed", "embed cells (wrapper CSV, fields of view or shards) to AnnData / Parquet / .npy"),
    "plot": ("plot", "UMAP/PCA map of an embedding run and a grid of its attention maps"),
    "demo": ("demo", "the main job end to end on the built-in synthetic default (what `make demo` runs)"),
}

USAGE = "usage: subcell-hf [-h] COMMAND [--config_path YAML] [--FIELD VALUE ...]"


def overview() -> str:
    lines = [USAGE, "", "SubCell models in the Hugging Face ecosystem.", "", "commands:"]
    lines += [f"  {name:<9s} {help_text}" for name, (_, help_text) in COMMANDS.items()]
    lines += ["", "`subcell-hf COMMAND --help` lists the command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(overview(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"{USAGE}\nsubcell-hf: error: unknown command {name!r}: expected one of {', '.join(COMMANDS)}",
              file=sys.stderr)
        return 2
    module = importlib.import_module(f"subcell_hf.commands.{COMMANDS[name][0]}")
    from .utils.config_cli import parse_config

    try:  # a bad flag or value: usage + one line naming it, status 2 (as argparse); --help: status 0
        config = parse_config(module.Config, rest, prog=f"subcell-hf {name}", description=module.__doc__)
    except SystemExit as done:
        return int(done.code or 0)
    from .utils.processes import quiet_deepspeed_probe

    quiet_deepspeed_probe()
    return int(module.run(config) or 0)


if __name__ == "__main__":
    sys.exit(main())
