"""The durable event log of an online A/B experiment: experiments, assignments and outcomes.

Every event is committed before the server answers, so an acknowledged request is never lost:
- SQLite (the default, one server): WAL journal with `synchronous=FULL`, so a committed transaction survives
  `kill -9` and power loss (https://www.sqlite.org/wal.html, https://www.sqlite.org/pragma.html#pragma_synchronous);
- PostgreSQL through psycopg 3 (several servers sharing one experiment): each batch is one transaction.
An outcome is keyed by its request id (primary key), so a second outcome for a request is refused and
nothing is counted twice. Both back ends run the same SQL; only the placeholder style differs.
Outcomes are finite numbers within +-OUTCOME_LIMIT (the server answers 400 otherwise); an older log holding
values beyond it is still readable: `summary` leaves them out and counts them (`skipped_outcomes`).
Messages name a store by its URL with any password masked (`llmlab.errors.mask_secrets`).
"""

from __future__ import annotations

import json
import queue
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llmlab.errors import LlmlabError, mask_secrets, require_extra

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS experiments (name TEXT PRIMARY KEY, config TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS assignments (request_id TEXT PRIMARY KEY, experiment TEXT NOT NULL,"
    " user_id TEXT NOT NULL, variant TEXT NOT NULL, prediction TEXT NOT NULL,"
    " latency_ms DOUBLE PRECISION NOT NULL, created_at DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX IF NOT EXISTS assignments_experiment ON assignments (experiment)",
    "CREATE TABLE IF NOT EXISTS outcomes (request_id TEXT PRIMARY KEY REFERENCES assignments (request_id),"
    " value DOUBLE PRECISION NOT NULL, created_at DOUBLE PRECISION NOT NULL)",
)
_OUTCOME_COLUMNS = "o.request_id, a.user_id, a.variant, o.value, o.created_at"
OUTCOME_LIMIT = 1e9  # |outcome| at most this: sums of squares stay finite for 1e9 events
_IN_RANGE = f"o.value BETWEEN {-OUTCOME_LIMIT:.0f} AND {OUTCOME_LIMIT:.0f}"  # NaN and inf are outside


class UnknownRequest(LlmlabError):
    """An outcome names a request id the log has never seen."""


class DuplicateOutcome(LlmlabError):
    """A request id already has its outcome."""


class EventStore:
    """Shared SQL of both back ends; subclasses supply `_connect` and the placeholder `_P`."""

    _P = "?"
    _SCHEMA_LOCK: tuple[str, ...] = ()  # statements that serialise schema creation between processes

    def __init__(self, url: str, pool_size: int):
        self.url = url
        self.name = mask_secrets(url)  # what messages show
        self._pool: queue.Queue = queue.Queue()
        for _ in range(pool_size):
            self._pool.put(self._connect())
        with self._transaction() as cur:
            for statement in self._SCHEMA_LOCK + SCHEMA:
                cur.execute(statement)

    def _connect(self) -> Any:
        raise NotImplementedError

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        """A cursor inside one transaction: committed on success, rolled back on error."""
        conn = self._pool.get()
        try:
            cur = conn.cursor()
            try:
                yield cur
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
            finally:
                cur.close()
        finally:
            self._pool.put(conn)

    def _sql(self, statement: str) -> str:
        return statement.replace("?", self._P)

    def _rows(self, statement: str, params: Sequence, columns: Sequence[str]) -> list[dict]:
        with self._transaction() as cur:
            cur.execute(self._sql(statement), params)
            return [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]

    def create_experiment(self, name: str, split: dict[str, float], paths: dict[str, str]) -> None:
        """Record an experiment's configuration; doing it again with the same one changes nothing.

        Raises:
            LlmlabError: `name` exists with a different split or model paths.
        """
        config = json.dumps({"split": split, "paths": paths}, sort_keys=True)
        with self._transaction() as cur:
            cur.execute(
                self._sql("INSERT INTO experiments VALUES (?, ?) ON CONFLICT (name) DO NOTHING"),
                (name, config),
            )
        stored = self.experiment(name)
        if json.dumps({"split": stored["split"], "paths": stored["paths"]}, sort_keys=True) != config:
            raise LlmlabError(
                f"{self.name}: experiment {name!r} already exists with split {stored['split']} and models "
                f"{stored['paths']}; choose a new --experiment name to change them"
            )

    def experiment(self, name: str) -> dict:
        """{"name", "split": {variant: share}, "paths": {variant: model folder}}.

        Raises:
            LlmlabError: no experiment of that name.
        """
        rows = self._rows("SELECT config FROM experiments WHERE name = ?", (name,), ["config"])
        if not rows:
            raise LlmlabError(f"{self.name}: no experiment named {name!r}")
        return {"name": name, **json.loads(rows[0]["config"])}

    def log_assignment(
        self,
        request_id: str,
        experiment: str,
        user_id: str,
        variant: str,
        prediction: dict,
        latency_ms: float,
    ) -> None:
        """Commit one assignment (see `log_assignments`)."""
        self.log_assignments([(request_id, experiment, user_id, variant, prediction, latency_ms)])

    def log_assignments(self, rows: Sequence[tuple[str, str, str, str, dict, float]]) -> None:
        """Commit several assignments in one transaction (group commit: one fsync for the batch).

        Args:
            rows: (request_id, experiment, user_id, variant, prediction, latency_ms) each.
        """
        now = time.time()
        values = [(r, e, u, v, json.dumps(p), lat, now) for r, e, u, v, p, lat in rows]
        with self._transaction() as cur:
            cur.executemany(self._sql("INSERT INTO assignments VALUES (?, ?, ?, ?, ?, ?, ?)"), values)

    def log_outcome(self, request_id: str, value: float) -> None:
        """Commit the outcome of a request.

        Raises:
            UnknownRequest: no assignment has this request id.
            DuplicateOutcome: the request already has an outcome.
        """
        with self._transaction() as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO outcomes SELECT request_id, ?, ? FROM assignments WHERE request_id = ?"
                    " ON CONFLICT (request_id) DO NOTHING"
                ),
                (float(value), time.time(), request_id),
            )
            inserted = cur.rowcount
        if inserted == 1:
            return
        if self._rows("SELECT 1 FROM assignments WHERE request_id = ?", (request_id,), ["one"]):
            raise DuplicateOutcome(f"request {request_id} already has an outcome")
        raise UnknownRequest(f"unknown request id {request_id!r}")

    def assignments(self, experiment: str) -> list[dict]:
        """Every assignment of `experiment`, oldest first: request_id, user_id, variant, latency_ms, created_at."""
        columns = ["request_id", "user_id", "variant", "latency_ms", "created_at"]
        statement = f"SELECT {', '.join(columns)} FROM assignments WHERE experiment = ? ORDER BY created_at"
        return self._rows(statement, (experiment,), columns)

    def outcomes(self, experiment: str) -> list[dict]:
        """Every outcome of `experiment`, oldest first: request_id, user_id, variant, value, created_at."""
        statement = (
            f"SELECT {_OUTCOME_COLUMNS} FROM outcomes o JOIN assignments a ON a.request_id = o.request_id"
            " WHERE a.experiment = ? ORDER BY o.created_at"
        )
        return self._rows(
            statement, (experiment,), ["request_id", "user_id", "variant", "value", "created_at"]
        )

    def summary(self, experiment: str) -> dict[str, dict]:
        """Per variant: assignments, users, outcomes, the sum and sum of squares of outcome values, and the
        outcomes left out for being beyond +-OUTCOME_LIMIT (skipped_outcomes; written by older servers)."""
        columns = ["variant", "assignments", "users", "outcomes", "total", "total_sq", "skipped_outcomes"]
        statement = (
            "SELECT a.variant, COUNT(*), COUNT(DISTINCT a.user_id),"
            f" SUM(CASE WHEN {_IN_RANGE} THEN 1 ELSE 0 END),"
            f" COALESCE(SUM(CASE WHEN {_IN_RANGE} THEN o.value END), 0),"
            f" COALESCE(SUM(CASE WHEN {_IN_RANGE} THEN o.value * o.value END), 0),"
            f" SUM(CASE WHEN o.request_id IS NOT NULL AND NOT ({_IN_RANGE}) THEN 1 ELSE 0 END)"
            " FROM assignments a LEFT JOIN outcomes o ON o.request_id = a.request_id"
            " WHERE a.experiment = ? GROUP BY a.variant"
        )
        return {row.pop("variant"): row for row in self._rows(statement, (experiment,), columns)}

    def close(self) -> None:
        """Close every connection."""
        while not self._pool.empty():
            self._pool.get_nowait().close()


class SqliteStore(EventStore):
    """One SQLite file in WAL mode, fsynced on every commit; one connection (SQLite has one writer anyway)."""

    def __init__(self, url: str, path: Path, create: bool = True):
        self.path = path
        if not create:
            _check_log(path)
        super().__init__(url, pool_size=1)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level="DEFERRED")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn


def _check_log(path: Path) -> None:
    """Refuse (read-only, changing nothing) an SQLite file that is not an event log."""
    conn = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True)
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()
    if not {"experiments", "assignments", "outcomes"} <= tables:
        raise LlmlabError(f"{path}: not an llmlab event log (it has no experiments table)")


class PostgresStore(EventStore):
    """A PostgreSQL database shared by any number of servers; a small pool of psycopg 3 connections."""

    _P = "%s"
    # CREATE TABLE IF NOT EXISTS is not safe against a concurrent twin in PostgreSQL: take a lock first
    _SCHEMA_LOCK = ("SELECT pg_advisory_xact_lock(20240607)",)

    def _connect(self) -> Any:
        psycopg = require_extra("psycopg", "postgres", "a postgresql:// store")

        try:
            return psycopg.connect(self.url)
        except (psycopg.OperationalError, psycopg.ProgrammingError) as e:  # unreachable, refused, a bad URL
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise LlmlabError(mask_secrets(f"{self.name}: cannot connect: {reason}")) from None


def open_store(url: str | Path, create: bool = True) -> EventStore:
    """Open (creating the tables if needed) the event log at `url`.

    Args:
        url: "postgresql://..." (or "postgres://..."), "sqlite:///relative.db" or "sqlite:////absolute.db"
            (SQLAlchemy's convention), or a plain file path.
        create: make a new SQLite file when there is none (the server); False for readers (`abtest report`),
            which must not leave an empty database behind a typo.

    Raises:
        LlmlabError: the SQLite file's folder (or, without `create`, the file) does not exist, or PostgreSQL
            cannot be reached.
    """
    url = str(url)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url, pool_size=4)
    if "://" in url and not url.startswith("sqlite:///"):
        raise LlmlabError(
            f"{mask_secrets(url)}: unknown store; give a file path, sqlite:///FILE or postgresql://..."
        )
    path = Path(url.removeprefix("sqlite:///"))
    if not path.parent.is_dir():
        raise LlmlabError(f"{path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise LlmlabError(f"{path}: is a folder, expected an SQLite event log file")
    if not create and not path.is_file():
        raise LlmlabError(f"{path}: no such event log (a server writes it: `llmlab serve --store {url}`)")
    try:
        return SqliteStore(url, path, create)
    except sqlite3.DatabaseError as e:
        raise LlmlabError(f"{path}: not a usable SQLite event log: {e}") from None
