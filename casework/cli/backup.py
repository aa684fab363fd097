"""``backup`` and ``restore``: the commands a service's schedule runs, and the one it
rehearses. The work (and every check) lives in :mod:`casework.backup`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from casework import backup as backups
from casework.cli.common import JsonOpt, emit, fail, handles_errors
from casework.config import get_settings
from casework.db import get_engine, make_engine


def _rows(manifest: backups.Manifest) -> str:
    total = sum(manifest.row_counts.values())
    revision = ", ".join(manifest.revision) or "none"
    return f"{total:,} rows in {manifest.tables} tables, schema revision {revision}"


@handles_errors
def backup_cmd(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the dump and its manifest.", file_okay=False)
    ],
    as_json: JsonOpt = False,
) -> None:
    """Copy the configured database while the service runs, with a manifest beside it."""
    settings = get_settings()
    try:
        result = backups.backup(get_engine(settings), out)
    except backups.BackupError as exc:
        fail(str(exc))
    emit(
        {
            **backups.describe(result.manifest),
            "dump": str(result.dump),
            "manifest": str(result.manifest_path),
        },
        as_json,
        f"backup written to {result.dump} ({_rows(result.manifest)})\n"
        f"manifest: {result.manifest_path}",
    )


@handles_errors
def restore_cmd(
    file: Annotated[Path, typer.Argument(help="The dump; its manifest must sit beside it.")],
    to: Annotated[
        str | None,
        typer.Option(
            "--to", help="Database URL to restore into. Default: the configured database."
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace everything in a database that is not empty.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Restore a backup into an empty database, after checking it against its manifest."""
    engine = make_engine(to) if to else get_engine(get_settings())
    try:
        result = backups.restore(file, engine, force=force)
    except backups.BackupError as exc:
        fail(str(exc))
    finally:
        if to:
            engine.dispose()
    emit(
        {"target": result.target, "replaced": result.replaced, **backups.describe(result.manifest)},
        as_json,
        f"restored {file.name} into {result.target} ({_rows(result.manifest)});"
        " every table holds the rows its manifest counted",
    )
