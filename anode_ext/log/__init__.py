"""The notebook event log: catalogue, store, materialized tables, sync core."""

from .catalogue import CATALOGUE, EVENT_TYPES, Event, json_schema
from .envelope import Envelope
from .errors import AnodeError, Refused, StoreError
from .rules import ADMIN, ALL_RIGHTS, EXECUTE, READ, USER_RIGHTS, WRITE, Identity
from .state import State
from .store import Store
from .validate import Limits

__all__ = [
    "ADMIN",
    "ALL_RIGHTS",
    "CATALOGUE",
    "EVENT_TYPES",
    "EXECUTE",
    "READ",
    "USER_RIGHTS",
    "WRITE",
    "AnodeError",
    "Envelope",
    "Event",
    "Identity",
    "Limits",
    "Refused",
    "State",
    "Store",
    "StoreError",
    "json_schema",
]
