"""`nbento serve SRC`: serve a service, a built Bento, or one runner of either, over HTTP.
Settings resolve through `runtime.settings.resolve_settings` (defaults < code < file <
`NBENTO_*` env < flags < `--set`); `--print-settings` shows the result. Every flag and setting
is in docs/settings.md."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from runtime.errors import NbentoError
from runtime.settings import ServerConfig, parse_runner_map, resolve_settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a service or a built Bento over HTTP (typed APIs, batching, /metrics, reload)",
        description=(
            "Serve SRC: a service folder (with service.py), a .py file, a dotted module, a "
            "notebook, or a built Bento (its folder, or NAME:VERSION / NAME:latest from the "
            "bento store). Binds 127.0.0.1 unless --host says otherwise. Settings: "
            "docs/settings.md."
        ),
    )
    parser.add_argument(
        "source", metavar="SRC", help="service folder, .py file, module, notebook or Bento"
    )
    parser.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind (default 3000; 0 picks a free one)")
    parser.add_argument(
        "--config", metavar="FILE",
        help="settings YAML (default: $NBENTO_CONFIG, else a Bento's own config.yaml)",
    )
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
        "--set runners.classifier.batching.max_batch_size=16 (repeatable; wins over everything)",
    )
    parser.add_argument(
        "--print-settings", action="store_true",
        help="print the effective settings of SRC as YAML (per runner, method and API) and exit",
    )
    parser.set_defaults(func=run)


@dataclass
class ServeTarget:
    """What SRC names once a Bento is unpacked: the service source to import and, for a Bento,
    its folder (the model store to serve from) and its config.yaml (the default settings file,
    as in its image)."""

    source: str
    bento: Path | None = None
    config_file: Path | None = None


def serve_target(source: str) -> ServeTarget:
    """A Bento folder or `NAME:VERSION` from the bento store becomes its entry point; anything
    else is served as given."""
    from runtime.export.bento_store import BENTO_FILE, Bento, get_bento

    path = Path(source)
    if (path / BENTO_FILE).is_file():
        bento = Bento.read(path.resolve())
    elif ":" in source and not path.exists():
        bento = get_bento(source)
    else:
        return ServeTarget(source)
    return ServeTarget(
        str(bento.path / bento.info.entry_point), bento.path, bento.path / bento.info.config
    )


def settings_for(args: argparse.Namespace, target: ServeTarget) -> ServerConfig:
    """The one resolution of this command's settings (the server and --print-settings)."""
    flags: dict[str, Any] = {
        "host": args.host, "port": args.port, "dev": args.dev, "reload": args.reload,
    }
    if args.runner_map:
        flags["runner_map"] = parse_runner_map(args.runner_map)
    return resolve_settings(
        args.config, flags=flags, set_items=args.settings, default_file=target.config_file
    )


def print_settings(config: ServerConfig, source: str, runner: str | None = None) -> None:
    """The effective settings of `source` as YAML, with where they came from as comments."""
    from runtime.service.definition import as_source, load_service
    from runtime.serving.effective import effective_settings

    service = load_service(as_source(source))
    if runner is not None:
        service = service.only_runner(runner)
    view = effective_settings(config, service)
    lines = [
        f"# effective settings of service '{service.name}' (docs/settings.md)",
        "# sources, later winning: " + "; ".join(["defaults", "code", *config.sources]),
    ]
    lines += [f"# runner {name}: model {h.tag}" for name, h in sorted(service.runners.items())]
    print("\n".join(lines))
    print(yaml.safe_dump(view, sort_keys=False), end="")


def run(args: argparse.Namespace) -> int:
    from runtime.serving.server import serve

    target = serve_target(args.source)
    if target.bento is not None:
        # A Bento folder is a model store holding exactly the pinned versions it was built with;
        # whether its pickles may load is still this machine's trust registry's call.
        from runtime.store.trust import keep_trust_dir

        keep_trust_dir(os.environ)
        os.environ["NBENTO_HOME"] = str(target.bento)
    config = settings_for(args, target)
    if args.print_settings:
        print_settings(config, target.source, args.runner)
        return 0
    if target.bento is not None and config.reload:
        raise NbentoError("a built Bento does not change: serve it without --reload")
    serve(target.source, config, runner=args.runner)
    return 0
