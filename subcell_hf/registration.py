"""Make transformers know SubCell without making `import subcell_hf` pay for transformers.

`import subcell_hf` must stay fast (a command's `--help`, a notebook that only reads an h5ad), yet
`import subcell_hf; AutoModel.from_pretrained("subcell/...")` must resolve SubCell to this package's classes, with
no remote-code prompt. transformers offers public registries for both (`AutoConfig.register`, `AutoModel.register`,
..., and `PIPELINE_REGISTRY.register_pipeline`), which need the classes, hence torch and transformers.

So each registration runs when the transformers module that owns its registry has finished loading (or at once,
when it already has): a finder on `sys.meta_path` wraps the loader of those few modules and registers right after
they execute. A user never sees the difference: by the time `AutoModel` (or `pipeline`) can be called, SubCell is
registered.

Why the remote-code prompt appeared before: the saved folders carry an `auto_map` (for users without the
package); transformers asks before running repository code whenever it finds an `auto_map` entry and no locally
registered class. The Auto classes were registered, but `pipeline()` also probes `AutoVideoProcessor`, which
derives a `SubCellVideoProcessor` entry from the image processor's `auto_map` and, finding no local class, asked.
SubCell's pipelines (`subcell_hf.pipelines`) are image pipelines and do not load a video processor.
"""

from __future__ import annotations

import importlib.abc
import sys
import threading

_LOCK = threading.RLock()
_DONE: set[str] = set()


def _register_config() -> None:
    from transformers import AutoConfig

    from .models.configuration_subcell import SubCellConfig

    AutoConfig.register(SubCellConfig.model_type, SubCellConfig, exist_ok=True)


def _register_models() -> None:
    from transformers import AutoModel, AutoModelForImageClassification

    from .models.configuration_subcell import SubCellConfig
    from .models.modeling_subcell import SubCellForProteinLocalization, SubCellModel

    AutoModel.register(SubCellConfig, SubCellModel, exist_ok=True)
    AutoModelForImageClassification.register(SubCellConfig, SubCellForProteinLocalization, exist_ok=True)


def _register_image_processor() -> None:
    from transformers import AutoImageProcessor

    from .models.configuration_subcell import SubCellConfig
    from .models.image_processing_subcell import SubCellImageProcessor

    AutoImageProcessor.register(SubCellConfig, image_processor_classes={"pil": SubCellImageProcessor}, exist_ok=True)


def _register_pipelines() -> None:
    from .pipelines import register_pipelines

    register_pipelines()


#: transformers module -> what to register once it has loaded (config first: the others need SubCellConfig known)
TRIGGERS = {
    "transformers.models.auto.configuration_auto": _register_config,
    "transformers.models.auto.modeling_auto": _register_models,
    "transformers.models.auto.image_processing_auto": _register_image_processor,
    "transformers.pipelines": _register_pipelines,
}


def _run(module_name: str, strict: bool = True) -> None:
    with _LOCK:
        if module_name in _DONE:
            return
        _DONE.add(module_name)
        try:
            TRIGGERS[module_name]()
        except Exception:
            # From an import hook a failure must not break the user's `import transformers...`: it is retried by
            # `register_all`, which every `subcell_hf` attribute access runs first, and raised there.
            _DONE.discard(module_name)
            if strict:
                raise


#: SubCell's own modules: when one finishes loading, registrations that could not run yet (their transformers
#: module loaded while this module was half-initialised, e.g. modeling_subcell -> transformers.modeling_layers ->
#: transformers' modeling_auto) run then.
RETRY_AFTER = (
    "subcell_hf.models.configuration_subcell",
    "subcell_hf.models.modeling_subcell",
    "subcell_hf.models.image_processing_subcell",
)


def _run_loaded() -> None:
    """Run every registration whose transformers module has fully loaded."""
    for module_name in TRIGGERS:
        module = sys.modules.get(module_name)
        if module is not None and not getattr(getattr(module, "__spec__", None), "_initializing", False):
            _run(module_name, strict=False)


def register_all() -> None:
    """Register everything now (imports torch and transformers). Idempotent."""
    for module_name in TRIGGERS:
        _run(module_name)


class _RegisteringLoader(importlib.abc.Loader):
    """Delegates to the real loader; registers SubCell right after the module executed."""

    def __init__(self, loader, module_name: str):
        self._loader = loader
        self._module_name = module_name

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        if self._module_name in TRIGGERS:
            _run(self._module_name, strict=False)
        else:
            _run_loaded()

    def __getattr__(self, name):  # resource readers, get_source, ... of the real loader
        return getattr(self._loader, name)


class _RegisterOnImport(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname in _DONE or (fullname not in TRIGGERS and fullname not in RETRY_AFTER):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _RegisteringLoader(spec.loader, fullname)
                return spec
        return None


def install() -> None:
    """Register at once what transformers has already loaded; register the rest as transformers loads it."""
    with _LOCK:
        if not any(isinstance(finder, _RegisterOnImport) for finder in sys.meta_path):
            sys.meta_path.insert(0, _RegisterOnImport())
        _run_loaded()


__all__ = ["TRIGGERS", "install", "register_all"]
