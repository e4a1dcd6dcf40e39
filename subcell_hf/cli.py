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

import argparse
import importlib
import sys
from typing import Any

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


def parse_config(config_class: type, argv: list[str], prog: str, description: str | None = None) -> Any:
    """`argv` parsed into `config_class` (flags, `--config_path` YAML, `--section.field`). Raises `UsageError` for
    a bad flag or value, naming it; `--help` prints the help and exits 0 (SystemExit, as argparse)."""
    import draccus
    from draccus.argparsing import ArgumentParser

    usage = ""
    try:  # building the parser computes the defaults: a bad $SUBCELL_HF_RUNTIME is a usage error too
        parser = ArgumentParser(
            config_class, prog=prog, description=description, formatter_class=_help_formatter(), exit_on_error=False
        )
        usage = parser.parser.format_usage()
        return parser.parse_args(argv)
    except argparse.ArgumentError as error:
        raise UsageError(str(error), usage) from None
    except (draccus.utils.DraccusException, ValueError, TypeError, OSError) as error:  # YAML errors are ValueErrors
        cause = error.__cause__  # "Couldn't instantiate Config": the reason is the config's own check
        named = isinstance(error, draccus.utils.DecodingError) or cause is None  # "`num_fields`: Couldn't parse"
        message = str(error) if named else str(cause)
        known = set(parser.parser._option_string_actions) if usage else set()
        renamed = [f"--{arg[2:].replace('-', '_')}" for arg in argv if arg.startswith("--") and "-" in arg[2:]]
        renamed = [flag for flag in renamed if flag.split("=")[0] in known]
        if renamed:  # the argparse spelling of earlier versions
            message += f" (flags are the config's field names: {', '.join(renamed)})"
        raise UsageError(message, usage) from None


class UsageError(ValueError):
    """A command line (or YAML preset) that does not parse into the command's config."""

    def __init__(self, message: str, usage: str = ""):
        super().__init__(message)
        self.usage = usage


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
    try:
        config = parse_config(module.Config, rest, f"subcell-hf {name}", module.__doc__)
    except UsageError as error:
        print(f"{error.usage}subcell-hf {name}: error: {error}", file=sys.stderr)
        return 2
    except SystemExit as done:  # --help (0), or an argparse error it printed itself (2)
        return int(done.code or 0)
    from .utils.processes import quiet_deepspeed_probe

    quiet_deepspeed_probe()
    return int(module.run(config) or 0)


def _help_formatter() -> type[argparse.HelpFormatter]:
    """draccus' help (field docstrings, types, choices, defaults) without its repetitions: a section's
    `--crop str` line once, choices as {a,b} rather than Literal[a,b], and no "(default: None)" where None only means
    "not given" (the help says what then)."""
    import re

    from draccus.help_formatter import SimpleHelpFormatter

    class HelpFormatter(SimpleHelpFormatter):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._seen: set[tuple[str, ...]] = set()

        def _format_args(self, action: argparse.Action, default_metavar: str) -> str:
            return re.sub(r"Literal\[([^\]]*)\]", r"{\1}", super()._format_args(action, default_metavar))

        def _get_help_string(self, action: argparse.Action) -> str:
            if action.default is None:
                return action.help or ""
            return super()._get_help_string(action)

        def add_argument(self, action: argparse.Action) -> None:
            key = tuple(action.option_strings)
            if key and key in self._seen:
                return
            self._seen.add(key)
            super().add_argument(action)

    return HelpFormatter


if __name__ == "__main__":
    sys.exit(main())
