r"""Pretrain SubCell (ViT-ProtS-Pool or MAE-CellS-ProtS-Pool) over WebDataset shards with Accelerate / DeepSpeed.

  accelerate launch --cpu recipes/pretrain.py --config tiny                                  # CPU smoke run
  accelerate launch --config_file recipes/accelerate/single_gpu.yaml recipes/pretrain.py --config vit-prots-pool
  accelerate launch --config_file recipes/accelerate/deepspeed_zero2.yaml --mixed_precision bf16 \
      recipes/pretrain.py --config mae-cells-prots-pool --model.channel_variant dna-protein
  ... recipes/pretrain.py --config mae-cells-prots-pool --resume            # continue from the latest checkpoint

`--config` takes a preset name from recipes/configs/ (tiny, vit-prots-pool, mae-cells-prots-pool) or a YAML path;
any field can be overridden as `--section.field value`. At the end, `<train.output_dir>/encoder` holds the
encoder + pooler as a `SubCellModel` folder that `AutoModel.from_pretrained` loads.

Exit codes: 0 done (or session limit reached), 1 non-finite loss (the last good state is saved), 2 bad
configuration or shards, 143 stopped by SIGTERM / SIGUSR1 after saving state (re-queue the job with `--resume`).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from accelerate import PartialState

import subcell_hf  # noqa: F401  (registers the Auto classes)
from subcell_hf.pretraining.config import parse_args
from subcell_hf.pretraining.trainer import InvalidRunError, NonFiniteLossError, train
from subcell_hf.utils.processes import quiet_deepspeed_probe

PRESETS_DIR = Path(__file__).resolve().parent / "configs"
PREEMPTED_EXIT_CODE = 143


def resolve_preset(argv: list[str]) -> list[str]:
    """Replace `--config <preset>` by the preset's path in recipes/configs/."""
    argv = list(argv)
    for index, argument in enumerate(argv):
        name = None
        if argument == "--config" and index + 1 < len(argv):
            name, position = argv[index + 1], index + 1
        elif argument.startswith("--config="):
            name, position = argument.split("=", 1)[1], index
        if name is not None and not Path(name).exists() and (PRESETS_DIR / f"{name}.yaml").exists():
            argv[position] = str(PRESETS_DIR / f"{name}.yaml")
            if argument.startswith("--config="):
                argv[position] = f"--config={PRESETS_DIR / f'{name}.yaml'}"
    return argv


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    logging.getLogger("subcell_hf").setLevel(logging.INFO)  # the run's batch arithmetic, resume point, stop reason
    quiet_deepspeed_probe()
    config, resume = parse_args(resolve_preset(sys.argv[1:] if argv is None else argv), description=__doc__)
    try:
        result = train(config, resume=resume)
    except InvalidRunError as error:
        if PartialState().is_main_process:
            print(f"error: {error}", file=sys.stderr)
        return 2
    except NonFiniteLossError as error:
        if PartialState().is_main_process:
            print(f"error: {error}", file=sys.stderr)
        return 1
    if result.preempted:
        if PartialState().is_main_process:
            print(f"stopped at step {result.step}; state saved in {result.checkpoint}; continue with --resume")
        return PREEMPTED_EXIT_CODE
    if PartialState().is_main_process:
        print(f"done at step {result.step}; encoder in {result.encoder_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
