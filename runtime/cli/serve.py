"""`nbento serve SRC`: serve a service (or one runner of it) over HTTP. Every flag and setting
is in docs/settings.md."""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from runtime.errors import NbentoError
from runtime.settings import ServerConfig, load_config, parse_runner_map, validate_config


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a service over HTTP (typed APIs, batching, /metrics, hot reload)",
        description=(
            "Serve SRC: a service folder (with service.py), a .py file, a dotted module, or a "
            "notebook. Binds 127.0.0.1 unless --host says otherwise. Settings: docs/settings.md."
        ),
    )
    parser.add_argument("source", metavar="SRC", help="service folder, .py file, module or notebook")
    parser.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind (default 3000; 0 picks a free one)")
    parser.add_argument("--config", metavar="FILE", help="settings YAML (default: $NBENTO_CONFIG)")
    parser.add_argument(
        "--runner", metavar="NAME",
        help="serve only this runner (POST /_runner/{method}) for a split layout",
    )
    parser.add_argument(
        "--runner-map", metavar="JSON",
        help='runners served elsewhere: \'{"classifier": "http://127.0.0.1:3101"}\' '
        "(default: $NBENTO_RUNNER_MAP)",
    )
    parser.add_argument(
        "--dev", action="store_true", default=None,
        help="development mode: tracebacks in 500 bodies",
    )
    parser.add_argument(
        "--reload", action=argparse.BooleanOptionalAction, default=None,
        help="reload the code in-process when the source changes (models stay loaded)",
    )
    parser.add_argument(
        "--set", metavar="KEY=VALUE", action="append", default=[], dest="settings",
        help="any setting by its dotted path, value in YAML: "
        "--set runners.classifier.batching.max_batch_size=16 (repeatable; wins over --config)",
    )
    parser.set_defaults(func=run)


def apply_settings(config: ServerConfig, settings: list[str]) -> ServerConfig:
    """`--set a.b.c=VALUE` on top of `config`. Only keys set somewhere stay "set", so a config
    value still overrides code only where someone wrote it."""
    data = config.model_dump(exclude_unset=True)
    for item in settings:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise NbentoError(f"--set takes KEY=VALUE, like runners.NAME.workers=2; got {item!r}")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise NbentoError(f"--set {item}: the value is not valid YAML: {exc}") from exc
        target = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = target.setdefault(part, {})
            if not isinstance(child, dict):
                raise NbentoError(f"--set {item}: {part!r} is a value, not a group of settings")
            target = child
        target[parts[-1]] = value
    return validate_config(data, "invalid --set")


def run(args: argparse.Namespace) -> int:
    from runtime.serving.server import serve

    overrides: dict[str, Any] = {
        "host": args.host, "port": args.port, "dev": args.dev, "reload": args.reload,
    }
    if args.runner_map:
        overrides["runner_map"] = parse_runner_map(args.runner_map)
    config = load_config(args.config, **overrides)
    if args.settings:
        config = apply_settings(config, args.settings)
    serve(args.source, config, runner=args.runner)
    return 0
