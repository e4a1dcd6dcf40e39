r"""Pretrain SubCell (ViT-ProtS-Pool or MAE-CellS-ProtS-Pool) over WebDataset shards with Accelerate / DeepSpeed.

  accelerate launch --cpu recipes/pretrain.py --config_path tiny                             # CPU smoke run
  accelerate launch --config_file recipes/accelerate/single_gpu.yaml recipes/pretrain.py --config_path vit-prots-pool
  accelerate launch --config_file recipes/accelerate/deepspeed_zero2.yaml --mixed_precision bf16 \
      recipes/pretrain.py --config_path mae-cells-prots-pool --model.channel_variant dna-protein
  ... recipes/pretrain.py --config_path mae-cells-prots-pool --resume auto   # continue from the latest checkpoint

`--config_path` takes a YAML file or a preset name of recipes/configs/ (tiny, vit-prots-pool, mae-cells-prots-pool);
any field is overridden as `--section.field value` (values are YAML). At the end, `<train.output_dir>/encoder` holds
the encoder + pooler as a `SubCellModel` folder that `AutoModel.from_pretrained` loads.

Exit codes: 0 done (or session limit reached), 1 non-finite loss (the last good state is saved), 2 bad
configuration or shards, 143 stopped by SIGTERM / SIGUSR1 after saving state (re-queue the job with `--resume auto`).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from subcell_hf.pretraining.config import PretrainRecipeConfig
from subcell_hf.utils.config_cli import parse_config

PRESETS_DIR = Path(__file__).resolve().parent / "configs"
PREEMPTED_EXIT_CODE = 143


def main(argv: list[str] | None = None) -> int:
    config = parse_config(
        PretrainRecipeConfig, argv, prog="pretrain.py", description=__doc__, presets_dir=PRESETS_DIR
    )
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    logging.getLogger("subcell_hf").setLevel(logging.INFO)  # the run's batch arithmetic, resume point, stop reason
    from accelerate import PartialState

    import subcell_hf  # noqa: F401  (registers the Auto classes)
    from subcell_hf.pretraining.trainer import InvalidRunError, NonFiniteLossError, train
    from subcell_hf.utils.processes import quiet_deepspeed_probe

    quiet_deepspeed_probe()
    try:
        result = train(config, resume=config.resume)
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
            print(f"stopped at step {result.step}; state saved in {result.checkpoint}; continue with --resume auto")
        return PREEMPTED_EXIT_CODE
    if PartialState().is_main_process:
        print(f"done at step {result.step}; encoder in {result.encoder_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
