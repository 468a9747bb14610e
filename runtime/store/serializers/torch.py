"""torch `nn.Module`s, in the first of three formats that can hold the module:

1. `layers`: an `nn.Sequential` (nested ones included) of standard `torch.nn` layers, or one
   such layer, as a JSON layer spec (`layers.json`) plus `weights.safetensors`. Loading builds
   the layers from the spec and assigns the tensors: no code from the files runs. The spec is
   only used when rebuilding from it gives the same `repr` and the same state-dict keys.
2. `torchscript`: `torch.jit.script(module)` saved with `torch.jit.save`. The archive holds
   no pickled Python objects (its pickles are read by TorchScript's own unpickler, which only
   rebuilds tensors and TorchScript types), so the notebook's class need not be importable
   when it loads; but it carries a TorchScript program that runs with every torch operator,
   file access included, so it counts as code on load.
3. `cloudpickle`: anything TorchScript cannot compile, or that would lose a public method or
   attribute in compiling. Code on load.

`options.format` records which, `options.fallback_reason` why an earlier one was not used.
Training mode (per submodule), dtypes and devices come back as saved; `load(tag, device=...)`
moves the module (default: where it was saved when that device exists, else CPU).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from runtime.errors import SerializationError
from runtime.store.artifacts import ArtifactReader, ArtifactWriter
from runtime.store.serializers.pickle import dump_cloudpickle, load_pickle

if TYPE_CHECKING:  # pragma: no cover
    from runtime.store.info import ModelInfo

LAYERS_FILE = "layers.json"
WEIGHTS_FILE = "weights.safetensors"
SCRIPT_FILE = "module.torchscript.pt"
PICKLE_FILE = "module.pkl"
FORMATS = ("layers", "torchscript", "cloudpickle")
# Constructor arguments that describe placement, not structure: the tensors bring their own.
_PLACEMENT_ARGS = {"device", "dtype"}
_SCALARS = (bool, int, float, str, type(None))


class _NotSpecable(Exception):
    """This module cannot be described as standard layers; the reason says why."""


def is_torch_module(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


class TorchSerializer:
    name = "torch"
    framework = "torch"

    def matches(self, obj: Any) -> bool:
        return is_torch_module(obj)

    def code_on_load(self, options: Mapping[str, Any]) -> bool:
        return options.get("format") != "layers"

    def save(self, obj: Any, artifacts: ArtifactWriter) -> dict[str, Any]:
        import torch

        versions = {"torch": str(torch.__version__)}
        base = {
            "versions": versions,
            "training": _training_modes(obj),
            "saved_on_device": _device_of(obj),
        }
        reasons: list[str] = []
        try:
            if importlib.util.find_spec("safetensors") is None:
                raise _NotSpecable("safetensors is not installed (pip install safetensors)")
            spec = layer_spec(obj)
        except _NotSpecable as exc:
            reasons.append(f"layers: {exc}")
        else:
            state = {k: v.detach().to("cpu").contiguous() for k, v in obj.state_dict().items()}
            _write_safetensors(state, artifacts)
            with artifacts.open(LAYERS_FILE) as f:
                f.write(json.dumps(spec, indent=1).encode())
            import safetensors

            versions["safetensors"] = safetensors.__version__
            return {"format": "layers", **base}
        try:
            scripted = _script(obj)
        except _NotSpecable as exc:
            reasons.append(f"torchscript: {exc}")
        else:
            with artifacts.open(SCRIPT_FILE) as f, _quiet_jit():
                torch.jit.save(scripted, f)
            return {"format": "torchscript", "fallback_reason": reasons, **base}
        dump_cloudpickle(obj, artifacts, PICKLE_FILE)
        return {"format": "cloudpickle", "fallback_reason": reasons, **base}

    def load(self, artifacts: ArtifactReader, info: ModelInfo, **options: Any) -> Any:
        """`device="cpu"`/`"cuda:0"`: where the module goes (default: where it was saved, or the
        CPU when that device is not here)."""
        import torch

        device = options.pop("device", None)
        if options:
            raise SerializationError(
                f"unknown load options for a torch model: {sorted(options)}; only device"
            )
        recorded = info.options
        fmt = recorded.get("format")
        device = device or _available(str(recorded.get("saved_on_device", "cpu")))
        if fmt == "layers":
            with artifacts.open(LAYERS_FILE) as reader:
                text = reader.read()
                reader.verify()
            module = build_from_spec(json.loads(text))
            state = _read_safetensors(artifacts, device)
            missing, unexpected = module.load_state_dict(state, strict=False, assign=True)
            if missing or unexpected:
                raise SerializationError(
                    f"{artifacts.path / WEIGHTS_FILE} does not fit {artifacts.path / LAYERS_FILE}"
                    f" (missing {missing}, unexpected {unexpected}); save the model again"
                )
            module.to(device)
        elif fmt == "torchscript":
            path = str(artifacts.verified_path(SCRIPT_FILE))
            with _quiet_jit():
                module = torch.jit.load(path, map_location=device)
        elif fmt == "cloudpickle":
            module = load_pickle(artifacts, PICKLE_FILE).to(device)
        else:
            raise SerializationError(
                f"unknown torch format {fmt!r} in {artifacts.path / 'model.yaml'}; this nbento "
                f"reads {', '.join(FORMATS)}. Upgrade nbento or save the model again."
            )
        _restore_training(module, recorded.get("training", {}))
        return module


# ------------------------------------------------------------------ layer spec


def layer_spec(module: Any) -> dict[str, Any]:
    """`module` as JSON data, or `_NotSpecable`: an `nn.Sequential` of standard layers (nested
    `nn.Sequential`s included) or one standard layer, checked by rebuilding it."""
    import torch

    seen: set[int] = set()
    for _, sub in module.named_modules(remove_duplicate=False):
        if id(sub) in seen and next(sub.children(), None) is None:
            raise _NotSpecable(f"the {type(sub).__name__} layer appears twice (shared weights)")
        seen.add(id(sub))
    try:
        spec = _spec_of(module, torch)
        with torch.device("meta"):  # shapes only: the check allocates no weights
            rebuilt = build_from_spec(spec)
    except (SerializationError, TypeError, ValueError) as exc:  # a signature or args we misread
        raise _NotSpecable(f"cannot rebuild from a layer spec: {exc}") from exc
    if repr(rebuilt) != repr(module):
        raise _NotSpecable("rebuilding from the layer spec gives a different module")
    if _public_attributes(rebuilt) != _public_attributes(module):
        raise _NotSpecable("the module carries attributes its layers' constructors do not set")
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    if {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()} != shapes:
        raise _NotSpecable("rebuilding from the layer spec gives different weights")
    return spec


def _spec_of(module: Any, torch: Any) -> dict[str, Any]:
    cls = type(module)
    standard = getattr(torch.nn, cls.__name__, None) is cls
    if not standard or not cls.__module__.startswith("torch.nn.modules."):
        raise _NotSpecable(f"{cls.__module__}.{cls.__qualname__} is not a standard torch.nn layer")
    if _has_hooks(module):
        raise _NotSpecable(f"the {cls.__name__} layer has hooks registered")
    if cls is torch.nn.Sequential:
        return {
            "type": "Sequential",
            "children": [[name, _spec_of(child, torch)] for name, child in module.named_children()],
        }
    if next(module.children(), None) is not None:
        raise _NotSpecable(f"{cls.__name__} holds submodules; only nn.Sequential may")
    return {"type": cls.__name__, "args": _constructor_args(module)}


def _has_hooks(module: Any) -> bool:
    hooks = (
        "_forward_hooks",
        "_forward_pre_hooks",
        "_backward_hooks",
        "_backward_pre_hooks",
        "_state_dict_hooks",
        "_load_state_dict_pre_hooks",
    )
    return any(getattr(module, hook, None) for hook in hooks)


def _public_attributes(module: Any) -> list[tuple[str, list[str]]]:
    return [
        (name, sorted(n for n in vars(sub) if not n.startswith("_")))
        for name, sub in module.named_modules()
    ]


def _ctor_params(cls: type) -> list[inspect.Parameter]:
    params = list(inspect.signature(cls).parameters.values())
    return [
        p
        for p in params
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in _PLACEMENT_ARGS
    ]


def _constructor_args(module: Any) -> dict[str, Any]:
    import torch

    args: dict[str, Any] = {}
    for param in _ctor_params(type(module)):
        if not hasattr(module, param.name):
            if param.default is inspect.Parameter.empty:
                raise _NotSpecable(
                    f"{type(module).__name__} does not keep its argument {param.name!r}"
                )
            continue  # rebuilt with the default; the repr check catches a wrong guess
        value = getattr(module, param.name)
        if isinstance(param.default, bool) and (value is None or isinstance(value, torch.Tensor)):
            value = value is not None  # `bias=True` is kept as the bias tensor itself
        args[param.name] = _jsonable(value, type(module).__name__, param.name)
    return args


def _jsonable(value: Any, layer: str, arg: str) -> Any:
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, (tuple, list)) and all(isinstance(v, _SCALARS) for v in value):
        return list(value)
    raise _NotSpecable(f"{layer} argument {arg!r} is a {type(value).__name__}, not plain data")


def build_from_spec(spec: Mapping[str, Any]) -> Any:
    """Layers from a spec written by `layer_spec`. Only `torch.nn` classes are looked up, with
    plain-data arguments: a hand-edited spec can build a wrong model, never run code."""
    import torch

    kind = spec.get("type")
    cls = getattr(torch.nn, kind, None) if isinstance(kind, str) else None
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)) or not (
        cls.__module__.startswith("torch.nn.modules.")
    ):
        raise SerializationError(f"layer spec names {kind!r}, which is not a torch.nn layer")
    if cls is torch.nn.Sequential:
        layers = torch.nn.Sequential()
        for name, child in spec.get("children", []):
            layers.add_module(str(name), build_from_spec(child))
        return layers
    args = spec.get("args", {})
    if not isinstance(args, dict):
        raise SerializationError(f"layer spec for {kind} has arguments {args!r}, not a mapping")
    try:
        return cls(**{str(k): tuple(v) if isinstance(v, list) else v for k, v in args.items()})
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"cannot build {kind}({args}) from the layer spec: {exc}") from exc


# ------------------------------------------------------------------ TorchScript


def _script(module: Any) -> Any:
    """TorchScript of `module`, or `_NotSpecable` when compiling fails or would drop a public
    method or attribute that callers of the loaded model could use."""
    import torch

    if isinstance(module, torch.jit.ScriptModule):
        return module
    try:
        with _quiet_jit():
            scripted = torch.jit.script(module)
    except Exception as exc:  # TorchScript rejects much of Python, each in its own way
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise _NotSpecable(f"torch.jit.script failed: {type(exc).__name__}: {first}") from exc
    lost = [name for name in _public_names(module) if not hasattr(scripted, name)]
    if lost:
        raise _NotSpecable(f"TorchScript would drop {', '.join(sorted(lost))}")
    return scripted


def _public_names(module: Any) -> set[str]:
    """Methods defined by the module's own classes and its public instance attributes."""
    import torch

    names = {n for n in vars(module) if not n.startswith("_") and n != "training"}
    for cls in type(module).__mro__:
        if cls is torch.nn.Module or not issubclass(cls, torch.nn.Module):
            break
        names |= {n for n, v in vars(cls).items() if not n.startswith("_") and callable(v)}
    return names


# ------------------------------------------------------------------ helpers


@contextmanager
def _quiet_jit() -> Iterator[None]:
    # torch 2.10+ marks TorchScript deprecated in favour of torch.export, which needs an example
    # input a stored model does not have; the format choice is recorded in model.yaml instead.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=DeprecationWarning)
        yield


def _write_safetensors(state: dict[str, Any], artifacts: ArtifactWriter) -> None:
    """Written by path (no bytes copy of the weights); the store hashes it when the save ends."""
    from safetensors.torch import save_file

    save_file(state, str(artifacts.path / WEIGHTS_FILE), metadata={"format": "pt"})


def _read_safetensors(artifacts: ArtifactReader, device: str) -> dict[str, Any]:
    from safetensors.torch import load_file

    return dict(load_file(str(artifacts.verified_path(WEIGHTS_FILE)), device=device))


def _training_modes(module: Any) -> dict[str, Any]:
    """The root's mode and the submodules whose mode differs from it (usually none)."""
    root = bool(module.training)
    differ = [name for name, sub in module.named_modules() if name and sub.training != root]
    return {"root": root, "differ": differ}


def _restore_training(module: Any, modes: Mapping[str, Any]) -> None:
    root = bool(modes.get("root", False))
    module.train(root)
    differ = set(modes.get("differ", []))
    for name, sub in module.named_modules():
        if name in differ:
            sub.training = not root


def _device_of(module: Any) -> str:
    for tensor in (*module.parameters(), *module.buffers()):
        return str(tensor.device)
    return "cpu"


def _available(device: str) -> str:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        return "cpu"
    return device
