"""`nbento models list | get TAG | delete TAG | export TAG PATH | import PATH [--trust] |
trust TAG`.

Thin wrappers over the store's module functions (the notebook calls the same ones): a table
for people by default, `--json` for scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from typing import Any

from runtime import store
from runtime.store.artifacts import human_size
from runtime.store.model_store import Model
from runtime.store.trust import ensure_registry, is_trusted, trust_model, untrusted_reasons


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    models = subparsers.add_parser(
        "models", help="list, inspect, delete, export and import stored models"
    )
    sub = models.add_subparsers(dest="models_command", metavar="ACTION")
    sub.required = True
    # every sub-command takes --json
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON for scripts")

    list_p = sub.add_parser("list", parents=[as_json], help="stored model versions, newest last")
    list_p.add_argument("name", nargs="?", help="only versions of this model")
    list_p.set_defaults(func=_list)

    get_p = sub.add_parser("get", parents=[as_json], help="one version's model.yaml (TAG: NAME[:VERSION|:latest])")
    get_p.add_argument("tag")
    get_p.set_defaults(func=_get)

    delete_p = sub.add_parser("delete", parents=[as_json], help="remove one version (NAME alone = the newest)")
    delete_p.add_argument("tag")
    delete_p.set_defaults(func=_delete)

    export_p = sub.add_parser("export", parents=[as_json], help="write one version to a .tar file")
    export_p.add_argument("tag")
    export_p.add_argument("path", help="target .tar file, or a folder to put NAME-VERSION.tar in")
    export_p.set_defaults(func=_export)

    import_p = sub.add_parser(
        "import", parents=[as_json],
        help="add the version held in a .tar made by export (not trusted unless --trust)",
    )
    import_p.add_argument("path")
    import_p.add_argument(
        "--trust", action="store_true",
        help="trust the model now: it may run code when it loads (a pickle); only for an "
        "archive whose origin you know",
    )
    import_p.set_defaults(func=_import)

    trust_p = sub.add_parser(
        "trust", parents=[as_json],
        help="after review, let a version from outside load although it runs code on load",
    )
    trust_p.add_argument("tag")
    trust_p.set_defaults(func=_trust)


def summary(model: Model) -> dict[str, Any]:
    """The JSON shape of one model in `list` / `delete` / `import` output."""
    info = model.info
    return {
        "name": info.name,
        "version": info.version,
        "tag": str(model.tag),
        "serializer": info.serializer,
        "format": info.options.get("format"),
        "framework": info.framework.model_dump(),
        "signatures": {k: v.model_dump() for k, v in info.signatures.items()},
        "labels": info.labels,
        "size_bytes": info.size_bytes,
        "trusted": is_trusted(model),
        "untrusted_reasons": untrusted_reasons(model),
        "creation_time": info.model_dump(mode="json")["creation_time"],
        "path": str(model.path),
    }


def _age(created: datetime) -> str:
    seconds = max(0.0, (datetime.now(timezone.utc) - created).total_seconds())
    for span, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= span:
            return f"{int(seconds // span)}{unit} ago"
    return f"{int(seconds)}s ago"


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    head = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()
    return "\n".join([head, *lines])


def _signature_text(model: Model) -> str:
    parts = [f"{name}{'*' if sig.batchable else ''}" for name, sig in model.info.signatures.items()]
    return ",".join(parts) or "-"


def _list(args: argparse.Namespace) -> int:
    ensure_registry(store.default_store())
    models = store.list_models(args.name)
    if args.json:
        print(json.dumps([summary(m) for m in models], indent=2))
        return 0
    if not models:
        where = store.default_store().root
        print(f"no models in {where}" + (f" named {args.name!r}" if args.name else ""))
        return 0
    rows = [
        [
            str(m.tag),
            m.info.serializer
            + (f" ({m.info.options['format']})" if m.info.options.get("format") else ""),
            _signature_text(m),
            human_size(m.info.size_bytes),
            _age(m.info.creation_time),
        ]
        for m in models
    ]
    print(_table(rows, ["TAG", "SERIALIZER", "SIGNATURES (*batchable)", "SIZE", "CREATED"]))
    return 0


def _get(args: argparse.Namespace) -> int:
    model = store.get(args.tag)
    if args.json:
        print(json.dumps({**model.info.model_dump(mode="json"), "path": str(model.path)}, indent=2))
    else:
        sys.stdout.write(f"# {model.path}\n{model.info.to_yaml()}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    model = store.delete(args.tag)
    print(json.dumps(summary(model)) if args.json else f"deleted {model.tag}")
    return 0


def _export(args: argparse.Namespace) -> int:
    model = store.get(args.tag)
    path = store.export_model(model.tag, args.path)
    if args.json:
        print(json.dumps({"tag": str(model.tag), "path": str(path)}))
    else:
        print(f"exported {model.tag} to {path}")
    return 0


def _import(args: argparse.Namespace) -> int:
    model = store.import_model(args.path, trust=args.trust)
    if args.json:
        print(json.dumps(summary(model)))
        return 0
    print(f"imported {model.tag} into {model.path}")
    reasons = untrusted_reasons(model)
    if reasons:
        print(
            f"not trusted: {'; and '.join(reasons)}. load() refuses it until you review it and "
            f"run `nbento models trust {model.tag}`"
        )
    return 0


def _trust(args: argparse.Namespace) -> int:
    model = store.get(args.tag)
    already = is_trusted(model)
    if not already:
        trust_model(model, "trusted with `nbento models trust`")
    if args.json:
        print(json.dumps(summary(model)))
    else:
        print(f"{model.tag} was trusted already" if already else f"trusted {model.tag}")
    return 0
