"""A small shop API as FastAPI apps are usually written: SQLAlchemy sessions
from a dependency, plain `def` endpoints (FastAPI runs them in a thread
pool), a SQLite database.

It carries no Prometheus client. Caddy in front of it (see ../Caddyfile)
counts every request per route, times it, and reads the database timings
this app reports in Server-Timing (timing.py); request_log.py puts Caddy's
X-Request-ID on every log line.

Run it with ../run.sh, or on its own:
    uvicorn app.main:app --app-dir examples/fastapi --port 8081 --no-access-log
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Form, HTTPException, Query, UploadFile
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .db import get_db, init_db, utcnow
from .models import ContactMessage, Customer, Document, Item
from .request_log import RequestLogMiddleware, configure_logging
from .timing import ServerTimingMiddleware

log = logging.getLogger("app")
DB = Annotated[Session, Depends(get_db)]


@asynccontextmanager
async def lifespan(app: FastAPI):
    configure_logging()
    init_db()
    yield


app = FastAPI(title="Example shop", lifespan=lifespan)
app.add_middleware(RequestLogMiddleware)
# Added last, so outermost: it sees every response, the 500s that
# RequestLogMiddleware sends for unhandled exceptions included.
app.add_middleware(ServerTimingMiddleware)


@app.get("/health")
def health(db: DB):
    db.execute(select(1))
    return {"status": "ok"}


@app.post("/v1/contact", status_code=201)
def submit_contact(
    name: Annotated[str, Form(max_length=200)],
    email: Annotated[str, Form(max_length=320)],
    message: Annotated[str, Form(max_length=5000)],
    db: DB,
):
    contact = ContactMessage(name=name, email=email, message=message)
    db.add(contact)
    db.commit()
    log.info("contact message %d stored", contact.id)
    return {"id": contact.id}


@app.get("/v1/items/{item_id}")
def read_item(item_id: int, db: DB):
    item = db.get(Item, item_id)
    if item is None:
        raise HTTPException(status_code=404, detail="Item not found")
    # Kept as found in many shops: items imported from the old shop have no
    # price (item 13 here), so this raises TypeError and the client gets a 500.
    return {"id": item.id, "name": item.name, "price": item.price_cents / 100}


@app.post("/v1/documents", status_code=201)
def upload_document(file: UploadFile, db: DB):
    size = len(file.file.read())
    document = Document(name=file.filename or "unnamed", size=size, content_type=file.content_type)
    db.add(document)
    db.commit()
    return {"id": document.id, "name": document.name, "size": size}


@app.delete("/v1/documents/{document_id}", status_code=204)
def delete_document(document_id: int, db: DB):
    if db.execute(delete(Document).where(Document.id == document_id)).rowcount == 0:
        raise HTTPException(status_code=404, detail="Document not found")
    db.commit()


@app.get("/v1/search")
def search(q: Annotated[str, Query(min_length=1, max_length=100)], db: DB):
    documents = db.scalars(select(Document.name).where(Document.name.contains(q, autoescape=True)).limit(20))
    items = db.scalars(select(Item.name).where(Item.name.contains(q, autoescape=True)).limit(20))
    return {"documents": list(documents), "items": list(items)}


bearer = HTTPBearer()


def current_customer(credentials: Annotated[HTTPAuthorizationCredentials, Depends(bearer)], db: DB) -> Customer:
    customer = db.scalar(select(Customer).where(Customer.api_token == credentials.credentials))
    if customer is None:
        raise HTTPException(status_code=401, detail="Unknown token", headers={"WWW-Authenticate": "Bearer"})
    customer.last_seen_at = utcnow()
    db.commit()
    return customer


def customer_out(customer: Customer) -> dict:
    return {"id": customer.id, "name": customer.name, "email": customer.email}


# Declared before /v1/customers/{customer_id}, so "me" is not taken for an id.
@app.get("/v1/customers/me")
def read_me(customer: Annotated[Customer, Depends(current_customer)]):
    return customer_out(customer)


@app.get("/v1/customers/{customer_id}")
def read_customer(customer_id: int, db: DB):
    customer = db.get(Customer, customer_id)
    if customer is None:
        raise HTTPException(status_code=404, detail="Customer not found")
    return customer_out(customer)


@app.get("/v1/files/{file_path:path}")
def read_file(file_path: str, db: DB):
    """Metadata of the latest document uploaded under this name."""
    document = db.scalar(select(Document).where(Document.name == file_path).order_by(Document.id.desc()).limit(1))
    if document is None:
        raise HTTPException(status_code=404, detail="File not found")
    return {"id": document.id, "name": document.name, "size": document.size,
            "content_type": document.content_type}
