"""`nbento build`, `nbento bentos list|get|delete`, `nbento export k8s`, `nbento containerize`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from runtime.cli.progress import progress_printer
from runtime.errors import NbentoError
from runtime.store.artifacts import human_size


def _pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise NbentoError(f"{flag} expects KEY=VALUE, got {item!r}")
        result[key] = value
    return result


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def render_tree(root: Path, max_entries: int = 8) -> list[str]:
    """`tree`-like lines with sizes; long folders show their first entries and a count."""
    lines = [f"{root.name}/  ({human_size(_size(root))})"]

    def walk(folder: Path, prefix: str) -> None:
        entries = sorted(folder.iterdir(), key=lambda p: (p.is_file(), p.name))
        shown = entries[:max_entries]
        for i, entry in enumerate(shown):
            last = i == len(shown) - 1 and len(entries) <= max_entries
            branch = "└── " if last else "├── "
            suffix = "/" if entry.is_dir() else ""
            lines.append(f"{prefix}{branch}{entry.name}{suffix}  ({human_size(_size(entry))})")
            if entry.is_dir():
                walk(entry, prefix + ("    " if last else "│   "))
        if len(entries) > max_entries:
            lines.append(f"{prefix}└── ... {len(entries) - max_entries} more")

    walk(root, "")
    return lines


def _cmd_build(args: argparse.Namespace) -> int:
    from runtime.export.bento import build_bento

    bento = build_bento(
        args.source,
        output=args.output,
        labels=_pairs(args.label, "--label"),
        include=args.include,
        exclude=args.exclude,
        base_image=args.base_image,
        python_version=args.python_version,
        system_packages=args.system_package,
        packages=args.package,
        config=args.config,
        allow_free_names=args.allow_free_names,
        replay=not args.skip_replay,
        progress=progress_printer(args),
    )
    if args.json:
        print(json.dumps(_bento_json(bento)))
        return 0
    print(f"built Bento {bento.tag}")
    print(f"  folder: {bento.path}")
    if args.output:
        print(f"  copied to: {Path(args.output).resolve()}")
    print(f"  size: {human_size(bento.size_bytes())}")
    print("\n".join(render_tree(bento.path)))
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from runtime.export.golden_replay import verify

    report = verify(args.target, url=args.url, progress=progress_printer(args))
    if args.json:
        print(json.dumps({
            "url": report.url, "total": report.total, "ok": report.ok,
            "mismatches": [
                {"api": m.golden.api, "request": m.golden.request, "status": m.status,
                 "differences": m.differences}
                for m in report.mismatches
            ],
        }))
    elif report.ok:
        print(report.summary())
    else:
        print(report.message(), file=sys.stderr)
    return 0 if report.ok else 1


def _bento_json(bento: Any) -> dict[str, Any]:
    return {
        "tag": str(bento.tag),
        "path": str(bento.path),
        "size_bytes": bento.size_bytes(),
        "creation_time": bento.info.creation_time.isoformat(),
        "service": bento.info.service,
        "labels": bento.info.labels,
        "models": [m.tag for m in bento.info.models],
        "apis": [a.name for a in bento.info.apis],
    }


def _cmd_list(args: argparse.Namespace) -> int:
    from runtime.export.bento_store import list_bentos

    bentos = list_bentos(args.name)
    if args.json:
        print(json.dumps([_bento_json(b) for b in bentos]))
        return 0
    if not bentos:
        print("no Bentos built yet (nbento build SRC)")
        return 0
    rows = [("TAG", "SIZE", "CREATED", "MODELS")]
    for b in bentos:
        rows.append(
            (
                str(b.tag),
                human_size(b.size_bytes()),
                f"{b.info.creation_time:%Y-%m-%d %H:%M:%S}",
                ", ".join(m.tag for m in b.info.models) or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
    return 0


def _cmd_get(args: argparse.Namespace) -> int:
    from runtime.export.bento_store import BENTO_FILE, get_bento

    bento = get_bento(args.bento)
    if args.json:
        print(json.dumps({**_bento_json(bento), "bento_yaml": bento.info.model_dump(mode="json")}))
        return 0
    print(f"# {bento.path}")
    print((bento.path / BENTO_FILE).read_text(), end="")
    return 0


def _cmd_delete(args: argparse.Namespace) -> int:
    from runtime.export.bento_store import delete_bento

    bento = delete_bento(args.bento)
    print(f"deleted Bento {bento.tag} ({bento.path})")
    return 0


def _cmd_export_bento(args: argparse.Namespace) -> int:
    from runtime.export.bento_archive import export_bento

    out = export_bento(args.bento, args.file)
    print(f"exported Bento {args.bento} to {out} ({human_size(out.stat().st_size)}); "
          f"BentoML takes it with: bentoml import {out.resolve()}")
    return 0


def _cmd_import_bento(args: argparse.Namespace) -> int:
    from runtime.export.bento_archive import import_bento
    from runtime.store.model_store import ModelStore
    from runtime.store.trust import trust_store, untrusted_models

    bento = import_bento(args.file)
    print(f"imported Bento {bento.tag} into {bento.path}")
    models = ModelStore(bento.path / "models", fsync=False)
    if args.trust:
        for model in trust_store(models, f"nbento bentos import {args.file} --trust"):
            print(f"  trusted {model.tag} (it runs code on load: reviewed by whoever ran --trust)")
        return 0
    for model, reasons in untrusted_models(models):
        print(
            f"  not trusted: {model.tag}: {'; '.join(reasons)}; after review: nbento models trust "
            f"{model.tag} with NBENTO_HOME={bento.path}, or import again with --trust",
            file=sys.stderr,
        )
    return 0


def _gpu_map(values: list[str] | None) -> dict[str, int]:
    result: dict[str, int] = {}
    for key, value in _pairs(values, "--gpu").items():
        try:
            result[key] = int(value)
        except ValueError:
            raise NbentoError(f"--gpu expects RUNNER=COUNT, got {key}={value!r}") from None
    return result


def _cmd_export_k8s(args: argparse.Namespace) -> int:
    from runtime.export.bento_store import get_bento
    from runtime.export.k8s import write_manifests
    from runtime.export.k8s_options import K8sOptions, SecretEnv

    bento = get_bento(args.bento)
    options = K8sOptions(
        out=Path(args.out) if args.out else None,
        image=args.image,
        namespace=args.namespace,
        split_runners=args.split_runners,
        yatai=args.yatai,
        replicas=args.replicas,
        min_replicas=args.min,
        max_replicas=args.max,
        gpu=_gpu_map(args.gpu),
        service_monitor=args.service_monitor,
        pdb=args.pdb,
        secret_env=[SecretEnv.parse(s) for s in args.secret_env or []],
        api_token_secret=args.api_token_secret,
        autoscale_metric=args.autoscale_metric,
        queue_target=args.queue_target,
        keda=args.keda,
        prometheus_url=args.prometheus_url,
        canary=args.canary,
        previous=args.previous,
        gateway=args.gateway,
    )
    written = write_manifests(bento, options)
    print(f"wrote {len(written)} files for {bento.tag} into {written[0].parent}:")
    for path in written:
        print(f"  {path}")
    print(f"apply with: kubectl apply -k {written[0].parent}")
    if options.canary is not None:
        print("then wait for the golden-call guard (docs/export.md, canary): kubectl wait "
              "--for=condition=complete --timeout=30m job -l "
              "app.kubernetes.io/component=canary-guard")
    return 0


def _cmd_containerize(args: argparse.Namespace) -> int:
    from runtime.export.bento_store import get_bento
    from runtime.export.containerize import containerize

    bento = get_bento(args.bento)
    tag = args.tag or f"{bento.name}:{bento.version}"
    containerize(
        bento,
        tag,
        base_url=args.docker_host,
        build_args=_pairs(args.build_arg, "--build-arg"),
        log=progress_printer(args),
    )
    if args.verify:
        from runtime.export.golden_replay import verify_image

        report = verify_image(bento, tag, base_url=args.docker_host, progress=progress_printer(args))
        if not report.ok:
            print(f"image {tag} answers differently from the notebook: {report.message()}",
                  file=sys.stderr)
            return 1
        print(report.summary())
    print(f"image {tag} is ready; run it with: docker run --rm -p 3000:3000 {tag}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "build", help="build a Bento folder from a notebook, service folder or module"
    )
    p.add_argument("source", help="notebook (.ipynb), service folder, .py file or module")
    p.add_argument("--output", "-o", help="also copy the Bento into this (new or empty) folder")
    p.add_argument("--label", action="append", metavar="KEY=VALUE", help="label (repeatable)")
    p.add_argument(
        "--include",
        action="append",
        metavar="GLOB",
        help="extra files to ship, relative to the service folder (repeatable)",
    )
    p.add_argument(
        "--exclude",
        action="append",
        metavar="PATTERN",
        help="files not to ship, .bentoignore syntax (repeatable)",
    )
    p.add_argument("--base-image", help="image to build on (default python:<python-version>-slim)")
    p.add_argument("--python-version", help="Python version of the image (default: this one)")
    p.add_argument(
        "--system-package", action="append", metavar="DEB", help="apt package (repeatable)"
    )
    p.add_argument(
        "--package",
        action="append",
        metavar="REQ",
        help="extra pip requirement the import scan cannot see (repeatable)",
    )
    p.add_argument("--config", help="server settings YAML to ship as config.yaml")
    p.add_argument(
        "--allow-free-names", action="store_true",
        help="build even if the captured cells use names no captured cell defines",
    )
    p.add_argument(
        "--skip-replay", action="store_true",
        help="do not replay the notebook's golden answers against the built Bento",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_build)

    v = sub.add_parser(
        "verify",
        help="replay the golden answers recorded in the notebook against a service or Bento",
        description=(
            "Replay the answers recorded in the kernel (golden.jsonl: the API cells' sample "
            "calls and %nbento call) and compare. TARGET is a Bento (folder or NAME[:VERSION]; "
            "its golden/) or a SRC (service folder, .py file, notebook; its golden.jsonl). "
            "Without --url the target is served on a free 127.0.0.1 port for the check. "
            "Exit code 1 when any answer differs."
        ),
    )
    v.add_argument("target", metavar="SRC|BENTO")
    v.add_argument("--url", help="check a running server instead (e.g. a canary)")
    v.add_argument("--json", action="store_true", help="machine-readable output")
    v.set_defaults(func=_cmd_verify)

    bentos = sub.add_parser("bentos", help="list, show, delete, export or import built Bentos")
    bsub = bentos.add_subparsers(dest="bentos_command", metavar="ACTION")
    bsub.required = True
    b = bsub.add_parser("list", help="list built Bentos")
    b.add_argument("name", nargs="?", help="only this Bento's versions")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=_cmd_list)
    b = bsub.add_parser("get", help="show a Bento's bento.yaml")
    b.add_argument("bento", help="NAME[:VERSION] or a Bento folder")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=_cmd_get)
    b = bsub.add_parser("delete", help="delete a Bento version from the store")
    b.add_argument("bento", help="NAME:VERSION (NAME alone deletes the latest)")
    b.set_defaults(func=_cmd_delete)
    b = bsub.add_parser("export", help="write a Bento to a .bento archive (BentoML's layout)")
    b.add_argument("bento", help="NAME[:VERSION] or a Bento folder")
    b.add_argument("file", help="the new archive, e.g. NAME.bento")
    b.set_defaults(func=_cmd_export_bento)
    b = bsub.add_parser("import", help="add a .bento archive (from nbento or bentoml export)")
    b.add_argument("file", help="a .bento archive")
    b.add_argument(
        "--trust", action="store_true",
        help="trust its models that run code on load (pickles) after you reviewed where it came from",
    )
    b.set_defaults(func=_cmd_import_bento)

    export = sub.add_parser("export", help="export a Bento for a platform")
    esub = export.add_subparsers(dest="export_target", metavar="TARGET")
    esub.required = True
    k = esub.add_parser("k8s", help="Kubernetes manifests + kustomization.yaml")
    k.add_argument("bento", help="NAME[:VERSION] or a Bento folder")
    k.add_argument("--out", help="output folder (default ./k8s-NAME)")
    k.add_argument("--split-runners", action="store_true", help="one Deployment per runner")
    k.add_argument("--yatai", action="store_true", help="a Yatai BentoDeployment instead")
    k.add_argument("--image", help="image reference (default NAME:VERSION)")
    k.add_argument("--replicas", type=int, default=1)
    k.add_argument("--min", type=int, help="HPA minReplicas (default --replicas)")
    k.add_argument("--max", type=int, default=3, help="HPA maxReplicas")
    k.add_argument("--gpu", action="append", metavar="RUNNER=N", help="nvidia.com/gpu per runner")
    k.add_argument("--namespace")
    k.add_argument("--service-monitor", action="store_true", help="add a Prometheus ServiceMonitor")
    k.add_argument("--pdb", action="store_true", help="add PodDisruptionBudgets")
    k.add_argument(
        "--secret-env",
        action="append",
        metavar="ENV=SECRET:KEY",
        help="environment variable from a Secret (repeatable)",
    )
    k.add_argument(
        "--api-token-secret",
        metavar="SECRET[:KEY]",
        help="require an API token, read as NBENTO_API_TOKEN from this Secret (key default "
        "'token') by the API server and its runners",
    )
    k.add_argument(
        "--autoscale-metric", choices=["cpu", "queue"],
        help="what runner HPAs scale on (default: cpu, queue depth for runners with --gpu)",
    )
    k.add_argument("--queue-target", type=int, default=16,
                   help="rows waiting per runner pod before another is added (default 16)")
    k.add_argument("--keda", action="store_true",
                   help="KEDA ScaledObjects on queue depth instead of runner HPAs")
    k.add_argument("--prometheus-url", default="http://prometheus-operated.monitoring.svc:9090",
                   help="Prometheus the KEDA trigger queries")
    k.add_argument("--canary", type=int, metavar="PERCENT",
                   help="route PERCENT of traffic to this Bento, the rest to --previous")
    k.add_argument("--previous", metavar="BENTO_TAG",
                   help="the Bento in production now (stable track, rollback artifact)")
    k.add_argument("--gateway", default="nbento-gateway",
                   help="Gateway the canary HTTPRoute attaches to (default nbento-gateway)")
    k.set_defaults(func=_cmd_export_k8s)

    c = sub.add_parser("containerize", help="build the Bento's image with a Docker-API engine")
    c.add_argument("bento", help="NAME[:VERSION] or a Bento folder")
    c.add_argument("--tag", "-t", help="image tag (default NAME:VERSION)")
    c.add_argument("--build-arg", action="append", metavar="KEY=VALUE")
    c.add_argument("--docker-host", help="engine URL (default $DOCKER_HOST)")
    c.add_argument(
        "--verify", action="store_true",
        help="run the image and replay the Bento's golden answers against it (exit 1 on a "
        "difference)",
    )
    c.set_defaults(func=_cmd_containerize)
