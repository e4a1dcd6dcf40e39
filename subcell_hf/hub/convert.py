"""Exact conversion of the published SubCell checkpoints (docs/model.md, section 6) into `save_pretrained` folders.

The original files are plain pickled state dicts. They are read with ``torch.load(weights_only=True)``, every key is
renamed through an explicit table (no string replacement), and the conversion fails with one error that lists every
missing or unexpected key and every wrong shape. Tensors are copied bit for bit; the checks below prove it.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import transformers

from .. import __version__
from ..utils.atomic_writes import atomic_directory, check_output_folder
from ..utils.hashing import sha256_file
from ..models import SubCellConfig, SubCellForProteinLocalization, SubCellImageProcessor, SubCellModel
from ..models.modeling_subcell import sincos_position_embeddings
from ..variants import MODEL_FAMILIES, Release

SIDECAR_NAME = "conversion.json"

#: Keys that training checkpoints may hold beside the released encoder; they are reported and skipped.
TRAINING_ONLY_KEY = re.compile(r"^(target_encoder|decoder|mask_token|[A-Za-z_]*projector|[A-Za-z_]*probe)[._]")


class CheckpointMismatchError(ValueError):
    """An original checkpoint does not have the expected keys or shapes."""


def load_original_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load an original `.pth` state dict safely (`weights_only=True`), checking it is a flat dict of tensors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: original checkpoint file not found")
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - re-raised with the file name
        raise CheckpointMismatchError(f"{path}: not a loadable weights-only PyTorch state dict ({error})") from error
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointMismatchError(f"{path}: expected a plain dict of tensors, found {type(state_dict).__name__}")
    return state_dict


# ---------------------------------------------------------------------------------------------- key tables
def encoder_key_map(num_layers: int) -> dict[str, str]:
    """Original encoder key -> `SubCellModel` key, for every one of the 198 + 6 released keys."""
    table = {
        "encoder.embeddings.cls_token": "embeddings.cls_token",
        "encoder.embeddings.position_embeddings": "embeddings.position_embeddings",
        "encoder.embeddings.patch_embeddings.projection.weight": "embeddings.projection.weight",
        "encoder.embeddings.patch_embeddings.projection.bias": "embeddings.projection.bias",
        "encoder.layernorm.weight": "layernorm.weight",
        "encoder.layernorm.bias": "layernorm.bias",
        "pool_model.attention_v.1.weight": "pooler.attention_v.weight",
        "pool_model.attention_v.1.bias": "pooler.attention_v.bias",
        "pool_model.attention_u.1.weight": "pooler.attention_u.weight",
        "pool_model.attention_u.1.bias": "pooler.attention_u.bias",
        "pool_model.attention.weight": "pooler.attention_weights.weight",
        "pool_model.attention.bias": "pooler.attention_weights.bias",
    }
    per_layer = {
        "attention.attention.query": "attention.q_proj",
        "attention.attention.key": "attention.k_proj",
        "attention.attention.value": "attention.v_proj",
        "attention.output.dense": "attention.o_proj",
        "intermediate.dense": "mlp.fc1",
        "output.dense": "mlp.fc2",
        "layernorm_before": "layernorm_before",
        "layernorm_after": "layernorm_after",
    }
    for i in range(num_layers):
        for original, ours in per_layer.items():
            for kind in ("weight", "bias"):
                table[f"encoder.encoder.layer.{i}.{original}.{kind}"] = f"layers.{i}.{ours}.{kind}"
    return table


def classifier_key_map(num_hidden_layers: int = 2) -> dict[str, str]:
    """Original classifier key (`nn.Sequential` indices, 3 per Linear-ReLU-Dropout) -> `SubCellClassifier` key."""
    table = {}
    for i in range(num_hidden_layers):
        for kind in ("weight", "bias"):
            table[f"{3 * i}.{kind}"] = f"hidden.{i}.{kind}"
    for kind in ("weight", "bias"):
        table[f"{3 * num_hidden_layers}.{kind}"] = f"out_proj.{kind}"
    return table


def _rename(
    original: dict[str, torch.Tensor],
    table: dict[str, str],
    expected: dict[str, torch.Tensor],
    source: str,
    allow_training_keys: bool = False,
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename through `table`, checking keys and shapes against `expected`; one error lists every problem."""
    problems, ignored, renamed = [], [], {}
    for key, tensor in original.items():
        if key in table:
            target = table[key]
            if tuple(tensor.shape) != tuple(expected[target].shape):
                problems.append(
                    f"wrong shape for {key}: expected {tuple(expected[target].shape)}, found {tuple(tensor.shape)}"
                )
            renamed[target] = tensor
        elif allow_training_keys and TRAINING_ONLY_KEY.match(key):
            ignored.append(key)
        else:
            problems.append(f"unexpected key {key} {tuple(tensor.shape)}")
    problems += [f"missing key {key}" for key, target in table.items() if key not in original]
    if problems:
        raise CheckpointMismatchError(f"{source}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    return renamed, ignored


#: The released classifiers (docs/hub.md): `nn.Sequential` of 2 hidden Linear layers and a 31-class output Linear.
RELEASED_CLASSIFIER_LINEAR_LAYERS = 3
RELEASED_NUM_CLASSES = 31


def _linear_shapes(state_dict: dict[str, torch.Tensor]) -> list[tuple[str, tuple[int, ...]]]:
    return sorted(
        ((key, tuple(tensor.shape)) for key, tensor in state_dict.items()),
        key=lambda item: (int(item[0].split(".")[0]) if item[0].split(".")[0].isdigit() else -1, item[0]),
    )


def check_classifier_files(
    paths: list[Path], state_dicts: list[dict[str, torch.Tensor]], released: bool = True
) -> dict[str, torch.Tensor] | None:
    """Check the classifier files of one ensemble: with `released`, each must have the released layers (3 Linear
    layers, 31 classes); and all must have the same keys and shapes. Returns the state dict of the layout most
    files share (so an odd file is blamed, not seed 0); raises `CheckpointMismatchError` naming every file that
    differs."""
    if not state_dicts:
        return None
    problems = [
        f"{path}: holds no classifier layer (expected `<index>.weight` / `<index>.bias` tensors of an MLP)"
        for path, sd in zip(paths, state_dicts) if not any(key.endswith(".weight") for key in sd)
    ]
    if released:
        for path, sd in zip(paths, state_dicts):
            if not any(key.endswith(".weight") for key in sd):
                continue
            weights = [(k, shape) for k, shape in _linear_shapes(sd) if k.endswith(".weight")]
            classes = weights[-1][1][0] if weights else 0
            if len(weights) != RELEASED_CLASSIFIER_LINEAR_LAYERS or classes != RELEASED_NUM_CLASSES:
                problems.append(
                    f"{path}: {len(weights)} Linear layers and {classes} classes, expected the released "
                    f"{RELEASED_CLASSIFIER_LINEAR_LAYERS} layers and {RELEASED_NUM_CLASSES} classes (pass "
                    "released_classifiers=False / --any-classifier-architecture for another architecture)"
                )
    layouts = [tuple(_linear_shapes(sd)) for sd in state_dicts]
    common = max(set(layouts), key=lambda layout: (layouts.count(layout), -layouts.index(layout)))
    for path, layout in zip(paths, layouts):
        if layout != common and not any(problem.startswith(f"{path}:") for problem in problems):
            differs = sorted(set(layout) ^ set(common))
            problems.append(f"{path}: layers differ from the other classifiers' ({differs[:4]})")
    if problems:
        raise CheckpointMismatchError(f"{len(problems)} classifier file(s) do not match:\n  " + "\n  ".join(problems))
    return state_dicts[layouts.index(common)]


# ------------------------------------------------------------------------------------------- inference
def config_from_original(
    encoder_state_dict: dict[str, torch.Tensor],
    channel_names: list[str] | tuple[str, ...],
    position_embedding_type: str,
    num_classifiers: int = 0,
    classifier_state_dict: dict[str, torch.Tensor] | None = None,
    num_attention_heads: int | None = None,
    **config_kwargs,
) -> SubCellConfig:
    """Read the architecture off the tensor shapes (heads: `hidden // 64` unless given, as in ViT-B/16)."""
    sd = encoder_state_dict
    try:
        patch = sd["encoder.embeddings.patch_embeddings.projection.weight"]
        positions = sd["encoder.embeddings.position_embeddings"]
        hidden = patch.shape[0]
        layers = 1 + max(int(k.split(".")[3]) for k in sd if k.startswith("encoder.encoder.layer."))
        intermediate = sd["encoder.encoder.layer.0.intermediate.dense.weight"].shape[0]
        pool_hidden = sd["pool_model.attention_v.1.weight"].shape[0]
        pool_heads = sd["pool_model.attention.weight"].shape[0]
    except (KeyError, ValueError) as error:
        raise CheckpointMismatchError(f"encoder checkpoint lacks a key needed to read its architecture: {error}")
    if patch.shape[1] != len(channel_names):
        raise CheckpointMismatchError(
            f"encoder patch embedding has {patch.shape[1]} input channels, expected {len(channel_names)} "
            f"for channels {list(channel_names)}"
        )
    grid = round((positions.shape[1] - 1) ** 0.5)
    hidden_sizes = (512, 256)
    if classifier_state_dict is not None:
        hidden_keys = sorted(
            (int(k.split(".")[0]) for k in classifier_state_dict if k.endswith(".weight")),
        )[:-1]
        hidden_sizes = tuple(classifier_state_dict[f"{i}.weight"].shape[0] for i in hidden_keys)
        config_kwargs.setdefault("num_labels", classifier_state_dict[f"{3 * len(hidden_keys)}.weight"].shape[0])
    if config_kwargs.get("num_labels", 31) != 31:
        config_kwargs.setdefault("id2label", {i: f"LABEL_{i}" for i in range(config_kwargs["num_labels"])})
        config_kwargs.pop("num_labels")
    else:
        config_kwargs.pop("num_labels", None)
    return SubCellConfig(
        channel_names=list(channel_names),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=num_attention_heads or max(1, hidden // 64),
        intermediate_size=intermediate,
        image_size=grid * patch.shape[-1],
        patch_size=patch.shape[-1],
        position_embedding_type=position_embedding_type,
        pool_hidden_size=pool_hidden,
        pool_num_heads=pool_heads,
        classifier_hidden_sizes=hidden_sizes,
        num_classifiers=num_classifiers,
        **config_kwargs,
    )


@dataclass
class ConversionReport:
    """What a conversion read, skipped and checked. Saved as `conversion.json` next to the weights."""

    release: str | None
    sources: dict[str, dict] = field(default_factory=dict)  # file name -> {"sha256", "bytes"}
    ignored_training_keys: list[str] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(self.checks.values())

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def _verify(
    model: SubCellModel | SubCellForProteinLocalization,
    expected_tensors: dict[str, torch.Tensor],
    report: ConversionReport,
) -> None:
    """Bit-exact copy of every tensor, sin-cos table where the model family has one, finite outputs."""
    state = model.state_dict()
    report.checks["all_tensors_bit_exact"] = set(state) == set(expected_tensors) and all(
        torch.equal(state[k], expected_tensors[k].to(state[k].dtype)) for k in expected_tensors
    )
    encoder = model if isinstance(model, SubCellModel) else model.subcell
    if model.config.position_embedding_type == "sincos":
        grid = encoder.embeddings.grid_size
        table = sincos_position_embeddings(model.config.hidden_size, grid, grid)
        error = (encoder.embeddings.position_embeddings.detach() - table).abs().max().item()
        report.checks["sincos_position_embeddings"] = error < 1e-4
        report.details["sincos_max_abs_diff"] = f"{error:.3g}"
    generator = torch.Generator().manual_seed(0)
    size = model.config.image_size
    pixels = torch.rand(1, model.config.num_channels, size, size, generator=generator)
    with torch.inference_mode():
        output = model.eval()(pixels)
    values = [output.pooler_output] if isinstance(model, SubCellModel) else [output.embeddings, output.probabilities]
    report.checks["finite_outputs"] = all(torch.isfinite(v).all().item() for v in values)


def _save(
    model, processor: SubCellImageProcessor, report: ConversionReport, output_dir: Path, overwrite: bool, inputs: list
):
    with atomic_directory(output_dir, overwrite=overwrite, command="convert", inputs=inputs) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        processor.save_pretrained(staging)
        (staging / SIDECAR_NAME).write_text(json.dumps(report.to_dict(), indent=2) + "\n")


def convert_checkpoint(
    encoder_path: str | Path,
    classifier_paths: list[str | Path] | None,
    channel_names: list[str] | tuple[str, ...],
    position_embedding_type: str,
    output_dir: str | Path | None = None,
    release: Release | None = None,
    overwrite: bool = False,
    num_attention_heads: int | None = None,
    released_classifiers: bool = True,
) -> tuple[SubCellModel | SubCellForProteinLocalization, ConversionReport]:
    """Convert one original encoder (and optionally its classifier ensemble).

    Returns the converted model (a `SubCellForProteinLocalization` when classifiers are given, else a
    `SubCellModel`) and its `ConversionReport`. With `output_dir`, also writes the `save_pretrained` folder
    (safetensors, config, preprocessor config, `conversion.json`) atomically: staged, then renamed.
    Raises `CheckpointMismatchError` naming every missing/unexpected key and wrong shape, and every classifier
    file whose layers differ from the others' or (unless `released_classifiers=False`) from the released
    architecture (see `check_classifier_files`).
    """
    classifier_paths = [Path(p) for p in classifier_paths or []]
    report = ConversionReport(release=release.name if release else None)
    for path in [Path(encoder_path), *classifier_paths]:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: original checkpoint file not found")
        report.sources[path.name if path == Path(encoder_path) else f"{path.parent.name}/{path.name}"] = {
            "sha256": sha256_file(path),
            "bytes": path.stat().st_size,
        }

    inputs = [Path(encoder_path), *classifier_paths]
    if output_dir is not None:  # before the conversion's work: refuse an output that may not be replaced
        check_output_folder(output_dir, overwrite, "convert", inputs)
    encoder_sd = load_original_state_dict(encoder_path)
    classifier_sds = [load_original_state_dict(p) for p in classifier_paths]
    reference = check_classifier_files(classifier_paths, classifier_sds, released_classifiers)
    config = config_from_original(
        encoder_sd,
        channel_names,
        position_embedding_type,
        num_classifiers=len(classifier_sds),
        classifier_state_dict=reference,
        num_attention_heads=num_attention_heads,
        model_variant=release.name if release else None,
        source_checksums={name: info["sha256"] for name, info in report.sources.items()},
    )

    with torch.device("meta"):
        skeleton = SubCellForProteinLocalization(config) if classifier_sds else SubCellModel(config)
    expected = skeleton.state_dict()
    prefix = "subcell." if classifier_sds else ""
    encoder_expected = {k[len(prefix):]: v for k, v in expected.items() if k.startswith(prefix)}
    renamed, ignored = _rename(
        encoder_sd, encoder_key_map(config.num_hidden_layers), encoder_expected, str(encoder_path), True
    )
    report.ignored_training_keys = ignored
    tensors = {prefix + k: v for k, v in renamed.items()}
    for index, (path, sd) in enumerate(zip(classifier_paths, classifier_sds)):
        head_expected = {
            k[len(f"classifiers.{index}.") :]: v for k, v in expected.items() if k.startswith(f"classifiers.{index}.")
        }
        head, _ = _rename(sd, classifier_key_map(len(config.classifier_hidden_sizes)), head_expected, str(path))
        tensors.update({f"classifiers.{index}.{k}": v for k, v in head.items()})

    model = (SubCellForProteinLocalization if classifier_sds else SubCellModel)(config)
    model.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True, assign=False)
    model.eval()
    _verify(model, tensors, report)
    report.details.update({"subcell_hf": __version__, "transformers": transformers.__version__, "torch": torch.__version__})

    if output_dir is not None:
        if not report.passed:
            failed = [name for name, ok in report.checks.items() if not ok]
            raise CheckpointMismatchError(f"{encoder_path}: conversion checks failed: {failed}; nothing was written")
        _save(model, SubCellImageProcessor.from_config(config), report, Path(output_dir), overwrite, inputs)
    return model, report


def convert_release(
    release: Release,
    release_dir: str | Path,
    output_dir: str | Path | None = None,
    with_classifiers: bool = True,
    overwrite: bool = False,
    released_classifiers: bool = True,
):
    """Convert one of the 8 published releases from a folder with the published file layout."""
    encoder_path, classifier_paths = release.source_paths(release_dir)
    return convert_checkpoint(
        encoder_path,
        classifier_paths if with_classifiers else None,
        channel_names=release.variant.channels,
        position_embedding_type=release.family.position_embedding_type,
        output_dir=output_dir,
        release=release,
        overwrite=overwrite,
        released_classifiers=released_classifiers,
    )


def position_embedding_type_for(family: str) -> str:
    if family not in MODEL_FAMILIES:
        raise ValueError(f"unknown model family {family!r}; expected one of {sorted(MODEL_FAMILIES)}")
    return MODEL_FAMILIES[family].position_embedding_type
