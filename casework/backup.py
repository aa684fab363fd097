"""Backups and restores of the casework database, each with a manifest that proves it.

A backup is only worth what its restore is worth, so every dump gets a manifest
beside it: the schema revision it was taken at, how many rows each table held and
the dump's SHA-256. A restore refuses a dump whose checksum does not match, and
checks afterwards that the restored tables hold exactly the counted rows.

Both backends take the copy while the service keeps writing, and the counts come
from the very snapshot that was copied (never from the live database a moment
later, which would already hold more):

* SQLite: the online backup API copies the whole file in one step; the copy is
  then counted.
* PostgreSQL: a REPEATABLE READ transaction exports its snapshot, ``pg_dump``
  dumps that snapshot (custom format) and the same transaction counts the rows.

Restoring writes only into an empty database unless the caller forces it: a
restore over live records is a decision, never an accident.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.engine import URL

from casework.db import make_engine

MANIFEST_SUFFIX = ".manifest.json"
SQLITE_FORMAT = "sqlite"
PG_FORMAT = "pg_dump-custom"
CLIENT_PACKAGE = "postgresql-client"


class BackupError(RuntimeError):
    """A backup or restore that cannot be done; the message says what to do."""


@dataclass(frozen=True)
class Manifest:
    """What a dump holds, written as JSON beside it."""

    format: str
    dump: str
    sha256: str
    revision: list[str]
    row_counts: dict[str, int]
    created_at: str
    schema: str | None = None
    tables: int = field(default=0)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_file(cls, path: Path) -> Manifest:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**data)
        except FileNotFoundError:
            raise BackupError(
                f"no manifest beside the dump (looked for {path.name}); a dump without its"
                " manifest cannot be checked, so it is not restored"
            ) from None
        except (ValueError, TypeError) as exc:
            raise BackupError(f"the manifest {path.name} cannot be read: {exc}") from None


@dataclass(frozen=True)
class BackupResult:
    dump: Path
    manifest_path: Path
    manifest: Manifest


@dataclass(frozen=True)
class RestoreResult:
    target: str
    manifest: Manifest
    replaced: bool


def manifest_path_for(dump: Path) -> Path:
    return dump.with_name(dump.name + MANIFEST_SUFFIX)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _tables(connection: Connection) -> list[str]:
    return sorted(inspect(connection).get_table_names())


def _revision(connection: Connection, tables: list[str]) -> list[str]:
    if "alembic_version" not in tables:
        return []
    rows = connection.execute(text("SELECT version_num FROM alembic_version"))
    return sorted(str(r[0]) for r in rows)


def _counts(connection: Connection, tables: list[str]) -> dict[str, int]:
    quote = connection.dialect.identifier_preparer.quote
    return {
        table: int(connection.execute(text(f"SELECT count(*) FROM {quote(table)}")).scalar_one())
        for table in tables
    }


def _stamp(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def backup(engine: Engine, out_dir: Path, *, now: dt.datetime | None = None) -> BackupResult:
    """Copy the database into ``out_dir`` while it keeps running; write the manifest."""
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    out_dir.mkdir(parents=True, exist_ok=True)
    if engine.dialect.name == "sqlite":
        return _backup_sqlite(engine, out_dir, now)
    if engine.dialect.name == "postgresql":
        return _backup_postgres(engine, out_dir, now)
    raise BackupError(f"backups of a {engine.dialect.name} database are not supported")


def _fresh(dump: Path) -> Path:
    """The ``.partial`` file a dump is written to before it takes its name."""
    if dump.exists():
        raise BackupError(f"{dump} already exists; a backup never replaces another one")
    partial = dump.with_name(dump.name + ".partial")
    partial.unlink(missing_ok=True)
    return partial


def _write_manifest(dump: Path, manifest: Manifest) -> BackupResult:
    path = manifest_path_for(dump)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(manifest.to_json(), encoding="utf-8")
    partial.replace(path)
    return BackupResult(dump=dump, manifest_path=path, manifest=manifest)


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database has no file to back up or restore")
    return Path(url.database)


def _backup_sqlite(engine: Engine, out_dir: Path, now: dt.datetime) -> BackupResult:
    source_path = _sqlite_path(engine.url)
    if not source_path.exists():
        raise BackupError(f"there is no database file at {source_path} to back up")
    dump = out_dir / f"casework-{_stamp(now)}.sqlite3"
    partial = _fresh(dump)
    source = sqlite3.connect(source_path, timeout=30)
    target = sqlite3.connect(partial)
    try:
        # pages=-1 copies everything in one step under one read transaction: the copy
        # is the database as of one instant, and WAL lets writers carry on meanwhile.
        source.backup(target, pages=-1)
        target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    finally:
        target.close()
        source.close()

    copy = make_engine(f"sqlite:///{partial}")
    try:
        with copy.connect() as connection:
            tables = _tables(connection)
            revision = _revision(connection, tables)
            counts = _counts(connection, tables)
    finally:
        copy.dispose()
    for leftover in (
        partial.with_name(partial.name + "-wal"),
        partial.with_name(partial.name + "-shm"),
    ):
        leftover.unlink(missing_ok=True)
    partial.replace(dump)
    manifest = Manifest(
        format=SQLITE_FORMAT,
        dump=dump.name,
        sha256=sha256_of(dump),
        revision=revision,
        row_counts=counts,
        created_at=now.isoformat(),
        tables=len(tables),
    )
    return _write_manifest(dump, manifest)


def _client(program: str) -> str:
    found = shutil.which(program)
    if found is None:
        raise BackupError(
            f"{program} is not installed on this machine: install the Debian package"
            f" {CLIENT_PACKAGE} (apt-get install {CLIENT_PACKAGE}) and run this again"
        )
    return found


def _libpq_env(url: URL) -> dict[str, str]:
    """Connection settings for pg_dump/pg_restore through the environment, so a password
    never appears on a command line another user could list."""
    env = dict(os.environ)
    for var in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGOPTIONS"):
        env.pop(var, None)
    if url.host:
        env["PGHOST"] = url.host
    if url.port:
        env["PGPORT"] = str(url.port)
    if url.username:
        env["PGUSER"] = url.username
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    if url.database:
        env["PGDATABASE"] = url.database
    sslmode = url.query.get("sslmode")
    if isinstance(sslmode, str):
        env["PGSSLMODE"] = sslmode
    return env


def _run(argv: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        reason = lines[0] if lines else f"exit status {done.returncode}"
        raise BackupError(f"{what} failed: {reason}")


def _backup_postgres(engine: Engine, out_dir: Path, now: dt.datetime) -> BackupResult:
    pg_dump = _client("pg_dump")
    dump = out_dir / f"casework-{_stamp(now)}.pgdump"
    partial = _fresh(dump)
    with engine.connect() as base:
        connection = base.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            snapshot = str(connection.execute(text("SELECT pg_export_snapshot()")).scalar_one())
            schema = str(connection.execute(text("SELECT current_schema()")).scalar_one())
            # The transaction stays open while pg_dump runs: its snapshot is the dump's.
            _run(
                [
                    pg_dump,
                    "--format=custom",
                    f"--schema={schema}",
                    f"--snapshot={snapshot}",
                    f"--file={partial}",
                ],
                _libpq_env(engine.url),
                "pg_dump",
            )
            tables = _tables(connection)
            revision = _revision(connection, tables)
            counts = _counts(connection, tables)
    partial.replace(dump)
    manifest = Manifest(
        format=PG_FORMAT,
        dump=dump.name,
        sha256=sha256_of(dump),
        revision=revision,
        row_counts=counts,
        created_at=now.isoformat(),
        schema=schema,
        tables=len(tables),
    )
    return _write_manifest(dump, manifest)


# --- restore -------------------------------------------------------------------------------


def check_dump(dump: Path) -> Manifest:
    """The manifest of ``dump`` once its checksum is proven; refuses a damaged dump."""
    if not dump.is_file():
        raise BackupError(f"there is no dump at {dump}")
    manifest = Manifest.from_file(manifest_path_for(dump))
    if sha256_of(dump) != manifest.sha256:
        raise BackupError(
            f"{dump.name} does not match its manifest's checksum: the file is damaged or is"
            " not the dump the manifest describes; restore another backup"
        )
    return manifest


def restore(dump: Path, engine: Engine, *, force: bool = False) -> RestoreResult:
    """Restore ``dump`` into the database behind ``engine``, then prove the row counts."""
    manifest = check_dump(dump)
    expected = {SQLITE_FORMAT: "sqlite", PG_FORMAT: "postgresql"}.get(manifest.format)
    if expected != engine.dialect.name:
        raise BackupError(
            f"{dump.name} is a {manifest.format} dump and cannot be restored into a"
            f" {engine.dialect.name} database"
        )
    if engine.dialect.name == "sqlite":
        replaced = _restore_sqlite(dump, engine, force)
    else:
        replaced = _restore_postgres(dump, engine, manifest, force)
    engine.dispose()
    with engine.connect() as connection:
        tables = _tables(connection)
        counts = _counts(connection, tables)
    if counts != manifest.row_counts:
        differing = sorted(
            t
            for t in set(counts) | set(manifest.row_counts)
            if counts.get(t) != manifest.row_counts.get(t)
        )
        raise BackupError(
            "the restored database does not hold the rows the manifest counted (tables "
            + ", ".join(differing)
            + "); do not use it"
        )
    target = engine.url.render_as_string(hide_password=True)
    return RestoreResult(target=target, manifest=manifest, replaced=replaced)


def _refuse_unless_forced(holds_records: bool, force: bool) -> bool:
    if not holds_records:
        return False
    if not force:
        raise BackupError(
            "the target database is not empty; restore into an empty database, or add"
            " --force to replace everything in it with the backup"
        )
    return True


def _restore_sqlite(dump: Path, engine: Engine, force: bool) -> bool:
    target_path = _sqlite_path(engine.url)
    holds = False
    if target_path.exists():
        with engine.connect() as connection:
            holds = bool(_tables(connection))
    replaced = _refuse_unless_forced(holds, force)
    engine.dispose()
    target_path.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"file:{dump}?mode=ro", uri=True)
    target = sqlite3.connect(target_path, timeout=30)
    try:
        source.backup(target, pages=-1)  # replaces every page of the target at once
    finally:
        target.close()
        source.close()
    return replaced


def _target_schema(connection: Connection) -> str:
    """The schema the URL points at, even before it exists (then current_schema() is NULL)."""
    current = connection.execute(text("SELECT current_schema()")).scalar_one_or_none()
    if current:
        return str(current)
    path = str(connection.execute(text("SELECT current_setting('search_path')")).scalar_one())
    for entry in (e.strip().strip('"') for e in path.split(",")):
        if entry and entry != "$user":
            return entry
    return "public"


def _schema_exists(connection: Connection, schema: str) -> bool:
    found = connection.execute(
        text("SELECT 1 FROM pg_namespace WHERE nspname = :name"), {"name": schema}
    ).first()
    return found is not None


def _restore_postgres(dump: Path, engine: Engine, manifest: Manifest, force: bool) -> bool:
    """pg_restore cannot rename a schema, so the dump is restored under the schema it was
    taken from and then renamed to the target's. Whatever the target held is moved aside
    first and dropped only once the restore has worked, so a failed restore loses nothing."""
    pg_restore = _client("pg_restore")
    source_schema = manifest.schema or "public"
    quote = engine.dialect.identifier_preparer.quote
    with engine.connect() as connection:
        target_schema = _target_schema(connection)
        holds = bool(
            connection.execute(
                text("SELECT count(*) FROM information_schema.tables WHERE table_schema = :s"),
                {"s": target_schema},
            ).scalar_one()
        )
        target_exists = _schema_exists(connection, target_schema)
        if source_schema != target_schema and _schema_exists(connection, source_schema):
            raise BackupError(
                f"the dump holds schema {source_schema}, which already exists in the target"
                f" database beside {target_schema}; restore into another database"
            )
    replaced = _refuse_unless_forced(holds, force)
    aside = f"{target_schema[:40]}_before_restore" if target_exists else None
    if aside is not None:
        with engine.begin() as connection:
            if _schema_exists(connection, aside):
                raise BackupError(
                    f"schema {aside} is left from an earlier restore; drop it and run this again"
                )
            connection.execute(
                text(f"ALTER SCHEMA {quote(target_schema)} RENAME TO {quote(aside)}")
            )
    engine.dispose()
    try:
        _run(
            [
                pg_restore,
                "--exit-on-error",
                "--single-transaction",
                "--no-owner",
                "--no-acl",
                f"--dbname={_dbname(engine.url)}",
                str(dump),
            ],
            _libpq_env(engine.url),
            "pg_restore",
        )
    except BackupError:
        if aside is not None:
            with engine.begin() as connection:
                connection.execute(
                    text(f"ALTER SCHEMA {quote(aside)} RENAME TO {quote(target_schema)}")
                )
        raise
    with engine.begin() as connection:
        if source_schema != target_schema:
            connection.execute(
                text(f"ALTER SCHEMA {quote(source_schema)} RENAME TO {quote(target_schema)}")
            )
        if aside is not None:
            connection.execute(text(f"DROP SCHEMA {quote(aside)} CASCADE"))
    engine.dispose()
    return replaced


def _dbname(url: URL) -> str:
    return url.database or "postgres"


def describe(manifest: Manifest) -> dict[str, Any]:
    """The manifest as a dict for ``--json`` output."""
    return asdict(manifest)


__all__ = [
    "BackupError",
    "BackupResult",
    "Manifest",
    "RestoreResult",
    "backup",
    "check_dump",
    "manifest_path_for",
    "restore",
    "sha256_of",
]
