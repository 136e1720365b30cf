"""The database: one SQLAlchemy engine, a session per request, and the
tables with a few sample rows.

DATABASE_URL picks the database (default: app.db in the working
directory). SQLite is enough for the example; any SQLAlchemy URL works.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from datetime import datetime, timezone

from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite:///./app.db")

# FastAPI runs plain `def` endpoints in a thread pool, so a SQLite
# connection may be used by another thread than the one that opened it.
engine = create_engine(
    DATABASE_URL,
    connect_args={"check_same_thread": False} if DATABASE_URL.startswith("sqlite") else {},
)
SessionLocal = sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    pass


def get_db() -> Iterator[Session]:
    """FastAPI dependency: one session per request, closed afterwards."""
    with SessionLocal() as session:
        yield session


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def init_db() -> None:
    """Creates the tables and the sample rows if they are missing.

    Every uvicorn worker runs this at start-up. They take turns on a lock
    file (next to the database file for SQLite), so two of them never race
    to create the same table or seed the same rows.
    """
    from . import models  # registers the tables on Base.metadata

    lock_path = (engine.url.database or "app.db") + ".init-lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        Base.metadata.create_all(engine)
        with SessionLocal() as session:
            if session.scalar(select(func.count()).select_from(models.Item)) == 0:
                session.add_all(models.sample_rows())
                session.commit()
