"""`subcell-hf <command>`: a thin front to the Python API. Each command lives in `subcell_hf/commands/<name>.py`
with `add_arguments(parser)` and `run(args) -> int`; a command's module (and what it imports: torch,
transformers) is imported only when that command is named, so `subcell-hf --help` starts in a fraction of a second."""

from __future__ import annotations

import argparse
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


def build_parser(commands: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; the arguments of `commands` (default: all) are filled in, the others only listed."""
    parser = argparse.ArgumentParser(prog="subcell-hf", description="SubCell models in the Hugging Face ecosystem.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        if commands is not None and name not in commands:
            subparsers.add_parser(name, help=help_text)
            continue
        module = importlib.import_module(f"subcell_hf.commands.{module_name}")
        sub = subparsers.add_parser(
            name, help=help_text, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    named = [arg for arg in argv if arg in COMMANDS][:1]  # the first command word; none for `subcell-hf --help`
    args = build_parser(named).parse_args(argv)
    from .utils.processes import quiet_deepspeed_probe

    quiet_deepspeed_probe()
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
