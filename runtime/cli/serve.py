"""`nbento serve SRC`: serve a service (or one runner of it) over HTTP. Every flag is in
docs/settings.md."""

from __future__ import annotations

import argparse
from typing import Any

from ..config import load_config, parse_runner_map


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a service over HTTP (typed APIs, batching, /metrics, hot reload)",
        description=(
            "Serve SRC: a service folder (with service.py), a .py file, a dotted module, or a "
            "notebook. Binds 127.0.0.1 unless --host says otherwise."
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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..server import serve

    overrides: dict[str, Any] = {
        "host": args.host, "port": args.port, "dev": args.dev, "reload": args.reload,
    }
    if args.runner_map:
        overrides["runner_map"] = parse_runner_map(args.runner_map)
    config = load_config(args.config, **overrides)
    serve(args.source, config, runner=args.runner)
    return 0
