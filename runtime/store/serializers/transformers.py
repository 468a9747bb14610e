"""Hugging Face transformers models, tokenizers and pipelines as `save_pretrained` folders:
weights as safetensors, configs and tokenizers as JSON. A pipeline keeps its task and is
rebuilt with `pipeline(task, model=folder, tokenizer=folder)`. Loading reads the local folder
only (`local_files_only`), never runs repository code (`trust_remote_code=False`) and only
accepts safetensors weights (`use_safetensors=True`), so nothing is unpickled.

Only transformers' own classes are saved this way (the class is looked up by name in the
`transformers` module on load); a subclass defined in a notebook is a torch module instead.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from runtime.errors import SerializationError
from runtime.store.artifacts import ArtifactReader, ArtifactWriter

if TYPE_CHECKING:  # pragma: no cover
    from runtime.store.info import ModelInfo

MODEL_DIR = "model"
TOKENIZER_DIR = "tokenizer"
PIPELINE_DIR = "pipeline"
_PICKLED_WEIGHTS = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


def _kind(obj: Any) -> str | None:
    """"pipeline", "model" or "tokenizer" for transformers' own classes, else None."""
    tf = sys.modules.get("transformers")
    if tf is None or not type(obj).__module__.startswith("transformers."):
        return None
    if getattr(tf, type(obj).__name__, None) is not type(obj):
        return None
    for kind, base in (
        ("pipeline", "Pipeline"),
        ("model", "PreTrainedModel"),
        ("tokenizer", "PreTrainedTokenizerBase"),
    ):
        cls = getattr(tf, base, None)
        if cls is not None and isinstance(obj, cls):
            return kind
    return None


class TransformersSerializer:
    name = "transformers"
    framework = "transformers"

    def matches(self, obj: Any) -> bool:
        return _kind(obj) is not None

    def code_on_load(self, options: Mapping[str, Any]) -> bool:
        return False

    def save(self, obj: Any, artifacts: ArtifactWriter) -> dict[str, Any]:
        kind = _kind(obj)
        options: dict[str, Any] = {"format": "save_pretrained", "kind": kind}
        if kind == "tokenizer":
            obj.save_pretrained(str(artifacts.path / TOKENIZER_DIR))
            options["class"] = type(obj).__name__
        else:
            model = obj.model if kind == "pipeline" else obj
            options.update(
                {
                    "model_class": type(model).__name__,
                    "dtype": str(model.dtype).removeprefix("torch."),
                    "training": bool(model.training),
                }
            )
            if kind == "pipeline":
                obj.save_pretrained(str(artifacts.path / PIPELINE_DIR))
                options["task"] = obj.task
                options["has_tokenizer"] = obj.tokenizer is not None
            else:
                model.save_pretrained(str(artifacts.path / MODEL_DIR))
        _refuse_pickled_weights(artifacts)
        # Every package loading needs (imported by now if saving used it): a Bento installs them.
        options["versions"] = {
            name: str(getattr(sys.modules[name], "__version__", ""))
            for name in ("transformers", "torch", "safetensors", "tokenizers")
            if name in sys.modules
        }
        return options

    def load(self, artifacts: ArtifactReader, info: ModelInfo, **options: Any) -> Any:
        """`device="cpu"` (default) or another torch device; other options go to
        `from_pretrained` / `pipeline`."""
        artifacts.verify_rest()  # every file checked before transformers parses any
        import transformers

        recorded = info.options
        kind = recorded.get("kind")
        safe = {"local_files_only": True, "trust_remote_code": False}
        if kind == "tokenizer":
            cls = _transformers_class(recorded.get("class"), "PreTrainedTokenizerBase")
            return cls.from_pretrained(str(artifacts.path / TOKENIZER_DIR), **safe, **options)
        device = options.pop("device", "cpu")
        dtype = _dtype(recorded.get("dtype"))
        if kind == "pipeline":
            folder = str(artifacts.path / PIPELINE_DIR)
            pipe = transformers.pipeline(  # type: ignore[call-overload]
                str(recorded.get("task")),
                model=folder,
                tokenizer=folder if recorded.get("has_tokenizer") else None,
                device=device,
                dtype=dtype,
                trust_remote_code=False,
                local_files_only=True,
                model_kwargs={"use_safetensors": True},
                **options,
            )
            pipe.model.train(bool(recorded.get("training", False)))
            return pipe
        if kind != "model":
            raise SerializationError(
                f"model.yaml records transformers kind {kind!r}; this nbento loads model, "
                "tokenizer and pipeline"
            )
        cls = _transformers_class(recorded.get("model_class"), "PreTrainedModel")
        model = cls.from_pretrained(
            str(artifacts.path / MODEL_DIR), dtype=dtype, use_safetensors=True, **safe, **options
        )
        model.to(device)
        model.train(bool(recorded.get("training", False)))
        return model


def _refuse_pickled_weights(artifacts: ArtifactWriter) -> None:
    pickled = sorted(
        p.relative_to(artifacts.path).as_posix()
        for p in artifacts.path.rglob("*")
        if p.suffix in _PICKLED_WEIGHTS
    )
    if pickled:
        raise SerializationError(
            f"save_pretrained wrote pickled weights ({', '.join(pickled)}); this transformers "
            "version must write safetensors. Upgrade transformers or pass "
            "serializer='cloudpickle' to store it pickled."
        )


def _transformers_class(name: Any, base: str) -> Any:
    import transformers

    cls = getattr(transformers, name, None) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, getattr(transformers, base))):
        raise SerializationError(
            f"model.yaml names {name!r}, which is not a transformers {base} class in "
            f"transformers {transformers.__version__}"
        )
    return cls


def _dtype(name: Any) -> Any:
    import torch

    dtype = getattr(torch, name, None) if isinstance(name, str) else None
    if not isinstance(dtype, torch.dtype):
        raise SerializationError(f"model.yaml records dtype {name!r}, which is not a torch dtype")
    return dtype
