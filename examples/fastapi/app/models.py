"""Tables of the example shop."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base, utcnow


class Item(Base):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # NULL for rows imported from the old shop, which had no prices.
    price_cents: Mapped[int | None]


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    api_token: Mapped[str] = mapped_column(String(64), unique=True)
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ContactMessage(Base):
    __tablename__ = "contact_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    message: Mapped[str]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Document(Base):
    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The uploaded file name; may contain slashes ("reports/2026/q3.txt").
    name: Mapped[str] = mapped_column(String(500), index=True)
    size: Mapped[int]
    content_type: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def sample_rows() -> list[Base]:
    items = [Item(id=i, name="Item %d" % i, price_cents=250 * i) for i in range(1, 13)]
    # An old-shop import without a price: reading it fails (see main.read_item).
    items.append(Item(id=13, name="Imported item", price_cents=None))
    customers = [
        Customer(id=1, name="Ada", email="ada@example.com", api_token="token-ada"),
        Customer(id=2, name="Grace", email="grace@example.com", api_token="token-grace"),
        Customer(id=3, name="Edsger", email="edsger@example.com", api_token="token-edsger"),
    ]
    documents = [
        Document(name="handbook.pdf", size=48213, content_type="application/pdf"),
        Document(name="reports/2026/q3.txt", size=1200, content_type="text/plain"),
        Document(name="notes/meeting 1.md", size=310, content_type="text/markdown"),
    ]
    return [*items, *customers, *documents]
