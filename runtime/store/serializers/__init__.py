"""Serializers: small adapters that save one kind of object into a model folder and load it
back, one module per framework. Each records the framework's version and whether loading runs
code from the files (`code_on_load` in model.yaml); where a framework has a format that runs
none (npy, skops, safetensors, XGBoost/LightGBM model files, ONNX), that format comes first.

    from runtime.store.serializers import Serializer, register_serializer
"""

from __future__ import annotations

from runtime.store.serializers.registry import (
    Serializer,
    default_signatures,
    framework_version,
    prepared,
    register_serializer,
    runs_code_on_load,
    serializer_for,
    serializer_module,
    serializer_named,
    serializers,
)

__all__ = [
    "Serializer",
    "default_signatures",
    "framework_version",
    "prepared",
    "register_serializer",
    "runs_code_on_load",
    "serializer_for",
    "serializer_module",
    "serializer_named",
    "serializers",
]
