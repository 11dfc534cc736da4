"""The `crm` command: serve, worker, clock, migrate, bootstrap, demo, export-schema."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path


def _setup_logging() -> None:
    from api.core.logs import setup_logging
    from api.core.settings import get_settings

    settings = get_settings()
    setup_logging(settings.log_level, settings.log_format)


def _use_metrics_dir() -> None:
    """Prometheus multiprocess mode for this process and those it starts (uvicorn's and
    Dramatiq's): PROMETHEUS_MULTIPROC_DIR (else METRICS_DIR, else DATA_DIR/metrics), set
    before anything imports prometheus_client, without the files of processes now gone."""
    from api.core.settings import get_settings

    path = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or get_settings().metrics_dir)
    path.mkdir(parents=True, exist_ok=True)
    for file in path.glob("*.db"):  # counter_<pid>.db, histogram_<pid>.db, ...
        pid = file.stem.rpartition("_")[2]
        if pid.isdigit() and not _process_alive(int(pid)):
            file.unlink(missing_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path.resolve())


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


async def _with_db(coro_factory):  # type: ignore[no-untyped-def]
    from api.core.database import close_db, init_db

    await init_db()
    try:
        return await coro_factory()
    finally:
        await close_db()


def cmd_migrate(args: argparse.Namespace) -> int:
    from api.core.database import close_db, migrate_db

    async def run() -> None:
        try:
            await migrate_db()
        finally:
            await close_db()

    asyncio.run(run())
    print("migrations applied")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.core.logs import logging_config
    from api.core.settings import get_settings

    cmd_migrate(args)
    settings = get_settings()
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        proxy_headers=True,
        # Its own and its access lines in the app's format (also in its worker processes).
        log_config=logging_config(settings.log_level, settings.log_format),
        log_level="info",
        access_log=args.access_log,
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from api.core.settings import get_settings

    settings = get_settings()
    if not settings.redis_url:
        print(
            "crm worker needs REDIS_URL; without it the workers run inside `crm serve`.",
            file=sys.stderr,
        )
        return 2
    from dramatiq.cli import main as dramatiq_main

    sys.argv = [
        "dramatiq",
        "workers",
        "--processes",
        str(args.processes),
        "--threads",
        str(args.threads),
        # The worker processes keep the set-up made here (api.core.logs).
        "--skip-logging",
    ]
    if logging.getLogger().getEffectiveLevel() > logging.INFO:
        # Its start and stop lines, as uvicorn's are for `crm serve`, whatever LOG_LEVEL says.
        logging.getLogger("dramatiq").setLevel(logging.INFO)
    port = args.metrics_port or settings.worker_metrics_port
    if port:
        # A process of its own beside the workers serves what they record.
        os.environ["WORKER_METRICS_PORT"] = str(port)
        sys.argv += ["--fork-function", "api.core.metrics:serve_worker_metrics"]
    return dramatiq_main()


def cmd_clock(args: argparse.Namespace) -> int:
    from workers.clock import run_forever

    asyncio.run(_with_db(run_forever))
    return 0


def cmd_bootstrap(args: argparse.Namespace) -> int:
    from api.core.database import close_db, init_db, migrate_db
    from api.core.errors import AppError
    from api.offices.service import bootstrap

    async def run() -> int:
        await migrate_db()
        await close_db()
        await init_db()
        try:
            office, admin, created = await bootstrap(
                office_name=args.office,
                timezone=args.timezone,
                admin_email=args.admin_email,
                admin_password=args.admin_password,
            )
        except AppError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 2
        finally:
            await close_db()
        what = "created" if created else "already exists; nothing changed"
        print(f"office {office.name!r} {what}; admin {admin.email if admin else '-'}")
        return 0

    return asyncio.run(run())


def cmd_demo(args: argparse.Namespace) -> int:
    from api.core.database import close_db, init_db, migrate_db
    from api.demo import load_demo

    async def run() -> None:
        await migrate_db()
        await close_db()
        await init_db()
        try:
            await load_demo(contacts=args.contacts)
        finally:
            await close_db()

    asyncio.run(run())
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """`crm import FILE.csv --office NAME`: one ImportJob (R21), carried out here with a
    progress bar, or by the workers (REDIS_URL) while this follows its progress."""
    from api.core.database import close_db, init_db, migrate_db
    from api.core.errors import AppError
    from api.core.jobs import JobState
    from api.core.settings import get_settings
    from api.offices.models import Office
    from api.transfers import importer
    from api.transfers.models import ImportJob, ImportSource

    tty = sys.stdout.isatty()
    shown = {"line": ""}

    def draw(job: ImportJob) -> None:
        width = 30
        done = job.processed / job.total if job.total else 1.0
        bar = "#" * int(done * width)
        line = (
            f"[{bar:<{width}}] {done:4.0%} {job.processed:,}/{job.total:,} rows"
            f"  created {job.created:,}  updated {job.updated:,}  refused {job.error_count:,}"
        )
        if line != shown["line"]:
            print(("\r" if tty else "") + line, end="" if tty else "\n", flush=True)
            shown["line"] = line

    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        print(f"error: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2

    async def run() -> int:
        await migrate_db()
        await close_db()
        await init_db()
        try:
            office = await Office.get_or_none(name=args.office)
            if office is None:
                print(f"error: no office named {args.office!r}", file=sys.stderr)
                return 2
            try:
                parsed = importer.parse_csv(data)
                job = await importer.create_job(
                    office.id,
                    parsed.rows,
                    source=ImportSource.CLI,
                    file_name=path.name,
                    unknown_columns=parsed.unknown_columns,
                )
            except AppError as exc:
                print(f"error: {exc.message}", file=sys.stderr)
                return 2
            print(f"import {job.id}: {job.total:,} rows from {path.name} into {office.name!r}")
            if parsed.unknown_columns:
                print("ignored columns: " + ", ".join(parsed.unknown_columns))
            if get_settings().redis_url:
                await importer.enqueue(job)
                print("queued; a `crm worker` carries it out (Ctrl-C stops watching, not the job)")
                while job.state not in (JobState.DONE, JobState.FAILED):
                    await asyncio.sleep(0.25)
                    job = await ImportJob.filter(id=job.id).only(*importer.JOB_FIELDS).get()
                    draw(job)
            else:
                try:
                    job = await importer.execute_import(job.id, progress=draw) or job
                except Exception:
                    job = await ImportJob.filter(id=job.id).only(*importer.JOB_FIELDS).get()
            draw(job)
            if tty:
                print()
            errors = await importer.row_errors(job.id, first=20, after_row=None)
            for error in errors:
                print(f"row {error.row}, {error.field or '-'}: {error.message}")
            if job.error_count > len(errors):
                more = job.error_count - len(errors)
                print(f"… and {more:,} more refused rows (importJob.errors lists them)")
            print(
                f"{job.state}: created {job.created:,}, updated {job.updated:,},"
                f" unassigned {job.unassigned:,}, refused {job.error_count:,}"
            )
            return 0 if job.state == JobState.DONE else 1
        finally:
            await close_db()

    return asyncio.run(run())


def cmd_export_schema(args: argparse.Namespace) -> int:
    from api.schema import schema

    text = schema.as_str() + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="apply migrations and serve /graphql")
    p.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    p.add_argument(
        "--no-access-log",
        dest="access_log",
        action="store_false",
        help="no line per request (when a proxy in front already logs requests)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("worker", help="run Dramatiq workers (needs REDIS_URL)")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument(
        "--metrics-port",
        type=int,
        help="also serve the workers' Prometheus metrics on this port (WORKER_METRICS_PORT)",
    )
    p.set_defaults(func=cmd_worker)

    sub.add_parser("clock", help="run the scheduler that enqueues nightly jobs").set_defaults(
        func=cmd_clock
    )
    sub.add_parser("migrate", help="apply pending migrations").set_defaults(func=cmd_migrate)

    p = sub.add_parser("bootstrap", help="create an office and its first admin (idempotent)")
    p.add_argument("--office", required=True)
    p.add_argument("--timezone", default="UTC")
    p.add_argument("--admin-email", required=True)
    p.add_argument("--admin-password", required=True)
    p.set_defaults(func=cmd_bootstrap)

    p = sub.add_parser("demo", help="fill a realistic demo office (idempotent)")
    p.add_argument("--contacts", type=int, default=3000)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("import", help="import a CRM's CSV export into an office")
    p.add_argument("file", help="the CSV file (UTF-8, comma or semicolon, a header line)")
    p.add_argument("--office", required=True, help="the office's name")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("export-schema", help="write the GraphQL SDL")
    p.add_argument("--output", default="schema.graphql", help="a path, or - for stdout")
    p.set_defaults(func=cmd_export_schema)

    args = parser.parse_args(argv)
    if args.func in (cmd_serve, cmd_worker):
        _use_metrics_dir()
    _setup_logging()
    if args.func in (cmd_serve, cmd_worker, cmd_clock):
        # Fail at start, not at the first request, when SECRET_KEY is missing or weak.
        from api.core.settings import get_settings

        try:
            get_settings().secret_key  # noqa: B018
        except RuntimeError as exc:
            print(f"crm: {exc}", file=sys.stderr)
            return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
