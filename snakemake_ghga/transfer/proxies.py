"""ProxyRoutes: the part transfers' connection pools, through proxies as requests does.

In ``transfer``: imports ``errors``, urllib3 and ``requests.utils`` (not a session).
The JSON API goes through ``requests``, which honours ``HTTPS_PROXY``,
``HTTP_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` (and their lowercase forms);
a bare ``urllib3.PoolManager`` ignores them, so behind a mandatory proxy the
API worked and every part timed out. Here each part URL gets the proxy that
``requests`` would choose for it (its own ``get_environ_proxies`` and
``select_proxy``), read from the environment at each request, and the
connections go through one ``urllib3.ProxyManager`` per proxy, or the direct
``PoolManager``. Credentials in a proxy URL become a ``Proxy-Authorization``
header and are never logged: a proxy URL appears in no message.

Every open connection is tracked, so ``cut_connections`` (on Ctrl-C) can shut
down their sockets: a send or read blocked on a peer that went silent then
fails at once instead of at the socket timeout (10 s to send, 60 s to read).
"""

import contextlib
import socket
import threading
import weakref
from typing import Any

import urllib3
from requests.utils import (
    get_auth_from_url,
    get_environ_proxies,
    select_proxy,
)
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util import make_headers, parse_url

from snakemake_ghga.errors import ConfigError

__all__ = ["ProxyRoutes"]


class ProxyRoutes:
    """Pools by route: direct, or one per proxy; ``urlopen`` as a PoolManager.

    Every pool gets the same settings (e.g. ``maxsize`` = workers with
    ``block=True``), so a route holds at most as many connections as there
    are workers.
    """

    def __init__(self, **pool_kw: Any) -> None:
        self._pool_kw = pool_kw
        self._lock = threading.Lock()
        self._live: weakref.WeakSet[HTTPConnection] = weakref.WeakSet()
        self._pool_classes = _tracked_pool_classes(self._live, self._lock)
        self._direct = urllib3.PoolManager(**pool_kw)
        self._direct.pool_classes_by_scheme = self._pool_classes
        self._proxied: dict[str, urllib3.ProxyManager] = {}

    def urlopen(self, method: str, url: str, **kw: Any) -> Any:
        """Send the request through the route ``requests`` would choose."""
        return self.pool_for(url).urlopen(method, url, **kw)

    def pool_for(self, url: str) -> urllib3.PoolManager:
        """The pool for ``url`` under the current proxy environment."""
        proxy = select_proxy(url, get_environ_proxies(url))
        if not proxy:
            return self._direct
        with self._lock:
            pool = self._proxied.get(proxy)
            if pool is None:
                pool = self._proxied[proxy] = _proxy_manager(proxy, self._pool_kw)
                pool.pool_classes_by_scheme = self._pool_classes
            return pool

    def cut_connections(self) -> None:
        """Shut down every open socket: blocked sends and reads fail at once."""
        with self._lock:
            live = list(self._live)
        for connection in live:
            sock = connection.sock
            if sock is not None:  # the raw socket's shutdown, also under TLS
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def clear(self) -> None:
        """Close every pooled connection."""
        with self._lock:
            pools = [self._direct, *self._proxied.values()]
        for pool in pools:
            pool.clear()


def _tracked_pool_classes(
    live: "weakref.WeakSet[HTTPConnection]", lock: threading.Lock
) -> dict[str, type[HTTPConnectionPool]]:
    """Pool classes whose connections enter ``live`` on connect, leave on close."""

    class _Tracked(HTTPConnection):
        def connect(self) -> None:
            super().connect()
            with lock:
                live.add(self)

        def close(self) -> None:
            with lock:
                live.discard(self)
            super().close()

    class _TrackedTls(_Tracked, HTTPSConnection):
        pass

    class _Pool(HTTPConnectionPool):
        ConnectionCls = _Tracked

    class _TlsPool(HTTPSConnectionPool):
        ConnectionCls = _TrackedTls

    return {"http": _Pool, "https": _TlsPool}


def _proxy_manager(proxy: str, pool_kw: dict[str, Any]) -> urllib3.ProxyManager:
    if "://" not in proxy:  # "host:3128" means http, as for requests
        proxy = f"http://{proxy}"
    parsed = parse_url(proxy)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(
            f"the proxy for part transfers is not an http(s) proxy "
            f"(scheme {parsed.scheme!r})",
            "Set HTTPS_PROXY/HTTP_PROXY/ALL_PROXY to an http:// proxy URL",
        )
    username, password = get_auth_from_url(proxy)
    headers = (
        make_headers(proxy_basic_auth=f"{username}:{password}") if username else None
    )
    plain = parsed._replace(auth=None).url
    return urllib3.ProxyManager(plain, proxy_headers=headers, **pool_kw)
