"""What every sandbox service handler needs, bundled once: state, keys, store, hub.

Imports only the sandbox's own modules below the services.
"""

import threading
from dataclasses import dataclass, field

from .hub import Interrogator
from .objects import ObjectStore
from .state import StateStore
from .tokens import WorkOrderSigner

__all__ = ["STORAGE_ALIAS", "ServiceContext"]

STORAGE_ALIAS = "HD01"


@dataclass(slots=True)
class ServiceContext:
    """Shared collaborators and settings of the WPS, UCS and DCS handlers."""

    state: StateStore
    signer: WorkOrderSigner
    store: ObjectStore
    interrogator: Interrogator
    hub_public_key: bytes
    stage_delay_s: float = 0.0
    url_ttl_s: int = 3600
    staging_started: dict[str, float] = field(default_factory=dict)
    staging_lock: threading.Lock = field(default_factory=threading.Lock)
