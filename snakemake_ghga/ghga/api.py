"""GhgaApi: the GHGA JSON API (WKVS, WPS, UCS, DCS) over one requests.Session.

In ``ghga``: imports ``errors``, ``ghga.token``, ``ghga.models`` and requests; never the
transfer engine. Design notes:
- the work package is fetched once per run, the WKVS values once per run;
- work-order tokens (WOTs) are cached until a few seconds before their JWT
  ``exp`` and refreshed on 401 *and* 403 (the official client misses 401);
- transient failures (connection errors, 429, 5xx) are retried by urllib3's
  ``Retry`` with backoff and ``Retry-After``; everything else becomes a
  ``GhgaError`` from ``ghga.models.error_for``;
- ``Retry-After`` is read by that ``Retry`` alone: it also turns the DCS's
  "202, still staging" into the wait before asking again; an invalid value
  counts as none (backoff, or the default staging wait), not as a failure;
  a retry's ``Retry-After`` is capped by ``backoff_max_s``, and ``stop``
  (Ctrl-C) ends a retry wait at once with ``Cancelled``;
- the WKVS URL and the service URLs it returns must be https, or http to a
  loopback host (``config.url_refusal``), before any token is sent;
- every response body goes through an ``ghga.models`` parser, so a body of the
  wrong shape is an ``ApiError``, never an ``AttributeError`` or ``KeyError``;
- ``prefetch_*`` start a request the flow will need on a background thread,
  so that it overlaps another (a WOT while waiting for an upload slot, the
  close WOT beside the upload WOT, the envelope beside the DRS request); the
  request itself is the same, so no call is added, only a round trip saved;
- ``round_trip_s`` is the quickest answer so far (request sent to headers
  read): a far path needs more parts in flight from the start.
"""

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from snakemake_ghga.config import DEFAULT_WKVS_URL, require_https, url_refusal
from snakemake_ghga.errors import ApiError, AuthError, Cancelled, GhgaError
from snakemake_ghga.ghga import models
from snakemake_ghga.ghga.token import WorkPackageToken, open_sealed_box
from snakemake_ghga.redact import install_log_redaction, redact_text

__all__ = ["DEFAULT_WKVS_URL", "WOT_MARGIN_S", "GhgaApi"]

logger = logging.getLogger(__name__)

WOT_MARGIN_S = 5.0
_OPAQUE_WOT_TTL_S = 20.0
_LISTING_PAGE = 1000
_WotKey = tuple[str, str | None, str | None]


class _Retry(Retry):
    """urllib3's ``Retry``, bounded and stoppable.

    An invalid ``Retry-After`` counts as none (urllib3 raises ``InvalidHeader``,
    which would end the request); a valid one is capped by ``backoff_max``, as
    older urllib3 2.x does not cap it; and a wait ends at once, raising
    ``Cancelled``, when ``stop`` is set (Ctrl-C).
    """

    def __init__(self, *args: Any, stop: threading.Event | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self.stop = stop or threading.Event()

    def new(self, **kw: Any) -> "_Retry":
        retry = super().new(**kw)
        assert isinstance(retry, _Retry)
        retry.stop = self.stop
        return retry

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        value = self.retry_after_s(response.headers)
        return None if value is None else min(value, self.backoff_max)

    def retry_after_s(self, headers: Mapping[str, str]) -> float | None:
        """Return the ``Retry-After`` in seconds; None if missing or invalid."""
        value = headers.get("Retry-After")
        try:
            return None if value is None else self.parse_retry_after(value)
        except InvalidHeader:
            return None

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        delay = None
        if response is not None and self.respect_retry_after_header:
            delay = self.get_retry_after(response)
        if self.stop.wait(delay or self.get_backoff_time()):
            raise Cancelled("stopped while waiting to retry a GHGA API request")


def _retry(stop: threading.Event, backoff_max_s: float) -> _Retry:
    return _Retry(
        total=4,
        connect=4,
        read=2,
        status=4,
        backoff_factor=0.5,
        backoff_max=backoff_max_s,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=None,
        respect_retry_after_header=True,
        raise_on_status=False,
        stop=stop,
    )


_STAGING_WAIT_S = 5.0  # when a 202 gives no usable Retry-After
_STAGING_RETRY = _Retry()  # used only for its Retry-After parser


def _session(pool_size: int, retry: _Retry) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class GhgaApi:
    """One run's view of the GHGA services; thread-safe for concurrent files."""

    def __init__(
        self,
        wkvs_url: str,
        token: WorkPackageToken,
        secret_key: bytes,
        public_key_b64: str,
        *,
        session: requests.Session | None = None,
        timeout_s: tuple[float, float] = (10.0, 60.0),
        pool_size: int = 8,
        backoff_max_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._wkvs_url = require_https(wkvs_url, "the well-known values URL").rstrip(
            "/"
        )
        self._token = token
        self._secret_key = secret_key
        self._public_key_b64 = public_key_b64
        self._stopped = threading.Event()
        self._session = session or _session(
            pool_size, _retry(self._stopped, backoff_max_s)
        )
        self._timeout = timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._values: models.WellKnownValues | None = None
        self._package: models.WorkPackage | None = None
        self._access_token: str | None = None
        self._wots: dict[_WotKey, tuple[str, float]] = {}
        self._wot_locks: dict[_WotKey, threading.Lock] = {}
        self._background = ThreadPoolExecutor(16, thread_name_prefix="ghga-api")
        self._envelopes: dict[str, Future[bytes]] = {}
        self.round_trip_s: float | None = None  # the quickest answer so far
        install_log_redaction()  # requests logs through urllib3

    def close(self) -> None:
        """Stop the prefetches and close the session's pooled connections."""
        self._background.shutdown(wait=False, cancel_futures=True)
        self._session.close()

    def stop(self) -> None:
        """End retry waits at once and refuse new requests (e.g. on Ctrl-C)."""
        self._stopped.set()

    # -- prefetching ----------------------------------------------------------

    def prefetch_create_token(self, alias: str) -> None:
        """Fetch the WOT that creating the upload of ``alias`` will need."""
        self._background.submit(self._wot_quietly, ("create", alias, None))

    def prefetch_close_token(self, file_id: str) -> None:
        """Fetch the WOT that closing upload ``file_id`` will need (soon: it
        lives 30 s, so only for a file that will be done by then)."""
        self._background.submit(self._wot_quietly, ("close", None, file_id))

    def prefetch_envelope(self, accession: str) -> None:
        """Fetch the envelope ``envelope(accession)`` will then return."""
        with self._lock:
            if accession not in self._envelopes:
                self._envelopes[accession] = self._background.submit(
                    self._fetch_envelope, accession
                )

    def _wot_quietly(self, key: _WotKey) -> None:
        try:
            self._wot(key)
        except GhgaError:  # the request that needs it asks again and says why
            logger.debug("prefetching a %s work order token failed", key[0])

    # -- plumbing -----------------------------------------------------------

    def _send(
        self, method: str, url: str, what: str, **kwargs: Any
    ) -> requests.Response:
        if self._stopped.is_set():
            raise Cancelled(f"{what}: stopped")
        try:
            response = self._session.request(
                method, url, timeout=self._timeout, **kwargs
            )
        except requests.RequestException as err:
            raise ApiError(
                f"{what}: cannot reach {redact_text(url)} ({type(err).__name__})",
                "Check the network connection and --wkvs-url, then retry",
            ) from err
        elapsed = response.elapsed.total_seconds()
        if self.round_trip_s is None or elapsed < self.round_trip_s:
            self.round_trip_s = elapsed  # a lost race keeps a close value
        return response

    def _checked(
        self, response: requests.Response, what: str, ok: tuple[int, ...]
    ) -> Any:
        if response.status_code not in ok:
            raise models.error_for(response.status_code, response.text, what)
        return models.parse_json(response.content, what)

    def _with_wot(
        self,
        key: _WotKey,
        method: str,
        url: str,
        what: str,
        ok: tuple[int, ...] = (200,),
        **kwargs: Any,
    ) -> requests.Response:
        """Send with a WOT; on 401/403 fetch a fresh WOT and try once more."""
        refused: str | None = None
        for attempt in (1, 2):
            token = self._wot(key, stale=refused)
            headers = {"Authorization": f"Bearer {token}"}
            response = self._send(method, url, what, headers=headers, **kwargs)
            if response.status_code not in (401, 403) or attempt == 2:
                break
            refused = token
            logger.debug(
                "%s: HTTP %s, refreshing the work order token",
                what,
                response.status_code,
            )
        if response.status_code not in ok:
            raise models.error_for(response.status_code, response.text, what)
        return response

    # -- bootstrap ----------------------------------------------------------

    def well_known(self) -> models.WellKnownValues:
        """Return the WKVS values (fetched once)."""
        with self._lock:
            if self._values is None:
                what = "fetching the well-known values"
                response = self._send("GET", f"{self._wkvs_url}/values", what)
                values = models.parse_well_known(self._checked(response, what, (200,)))
                _check_service_urls(values)
                self._values = values
            return self._values

    def _bearer_access_token(self) -> str:
        if self._access_token is None:
            self._access_token = open_sealed_box(
                self._token.sealed_token, self._secret_key, "the work package token"
            )
        return self._access_token

    def work_package(self) -> models.WorkPackage:
        """Return the work package (fetched once per run)."""
        values = self.well_known()
        with self._lock:
            if self._package is None:
                package_id = self._token.work_package_id
                what = f"fetching work package {package_id}"
                headers = {"Authorization": f"Bearer {self._bearer_access_token()}"}
                url = f"{values.wps_url}/work-packages/{package_id}"
                response = self._send("GET", url, what, headers=headers)
                body = self._checked(response, what, (200,))
                self._package = models.parse_work_package(package_id, body)
            return self._package

    # -- work-order tokens ----------------------------------------------------

    def _wot(self, key: _WotKey, *, stale: str | None = None) -> str:
        """Return a valid WOT for ``key``; one fetch per key even under threads.

        Args:
            key: (work type, alias or accession, file id).
            stale: a token the service just refused; never returned again.
        """
        with self._lock:
            key_lock = self._wot_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                cached = self._wots.get(key)
            if cached and cached[0] != stale and self._clock() < cached[1]:
                return cached[0]
            token = self._fetch_wot(key)
            claims = models.jwt_claims(token)
            self._check_wot_key(claims)
            exp = claims.get("exp")
            valid_until = (
                float(exp) - WOT_MARGIN_S
                if isinstance(exp, int | float)
                else self._clock() + _OPAQUE_WOT_TTL_S
            )
            with self._lock:
                self._wots[key] = (token, valid_until)
            return token

    def _fetch_wot(self, key: _WotKey) -> str:
        package = self.work_package()
        wps = self.well_known().wps_url
        work_type, first, second = key
        headers = {"Authorization": f"Bearer {self._bearer_access_token()}"}
        base = f"{wps}/work-packages/{package.package_id}"
        what = f"requesting a '{work_type}' work order token"
        if work_type == "download":
            url, body = f"{base}/files/{first}/work-order-tokens", None
        else:
            url = f"{base}/boxes/{package.require_upload()[0]}/work-order-tokens"
            body = {"work_type": work_type, "alias": first, "file_id": second}
        response = self._send("POST", url, what, headers=headers, json=body)
        sealed = models.require_string(self._checked(response, what, (200, 201)), what)
        return open_sealed_box(sealed, self._secret_key, "the work order token")

    def _check_wot_key(self, claims: dict[str, Any]) -> None:
        claimed = claims.get("user_public_crypt4gh_key")
        if claimed and claimed != self._public_key_b64:
            raise AuthError(
                "the work package was issued for another public key than yours",
                "Use the key pair you registered with this work package "
                "(--my-public-key/--my-private-key) or request a new token",
            )

    # -- UCS ------------------------------------------------------------------

    def _ucs(self, path: str) -> str:
        fub = self.work_package().require_upload()[1]
        return f"{self.well_known().ucs_url}/boxes/{fub}/uploads{path}"

    def list_uploads(self, *, with_checksums: bool = False) -> list[models.FileUpload]:
        """Return every upload in the box (all pages), with checksums if asked."""
        items: list[models.FileUpload] = []
        while True:
            params: dict[str, int | str] = {"skip": len(items), "limit": _LISTING_PAGE}
            if with_checksums:
                params["with_checksums"] = "true"
            response = self._with_wot(
                ("view", None, None),
                "GET",
                self._ucs(""),
                "listing the upload box",
                params=params,
            )
            body = self._checked(response, "listing the upload box", (200,))
            page, total_count = models.parse_upload_page(body)
            items.extend(page)
            if not page or len(items) >= total_count:
                return items

    def create_upload(
        self,
        alias: str,
        decrypted_size: int,
        encrypted_size: int,
        part_size: int,
        *,
        overwrite: bool,
    ) -> models.CreatedUpload:
        """Create a file upload (the server starts the multipart upload)."""
        what = f"creating the upload of '{alias}'"
        body = {
            "alias": alias,
            "decrypted_size": decrypted_size,
            "encrypted_size": encrypted_size,
            "part_size": part_size,
            "overwrite": overwrite,
        }
        response = self._with_wot(
            ("create", alias, None),
            "POST",
            self._ucs(""),
            what,
            ok=(200, 201),
            json=body,
        )
        return models.parse_created_upload(
            alias, self._checked(response, what, (200, 201))
        )

    def part_upload_url(self, file_id: str, part_number: int) -> str:
        """Return a presigned URL for one part (fetched per part, as S3 wants)."""
        what = f"getting the URL of part {part_number} of upload {file_id}"
        response = self._with_wot(
            ("upload", None, file_id),
            "GET",
            self._ucs(f"/{file_id}/parts/{part_number}"),
            what,
        )
        return models.require_string(self._checked(response, what, (200,)), what)

    def complete_upload(self, file_id: str, checksums: models.UploadChecksums) -> None:
        """Close the upload with the four checksum fields (PATCH → 204)."""
        body = {
            "decrypted_sha256": checksums.decrypted_sha256,
            "encrypted_md5": checksums.encrypted_md5,
            "encrypted_parts_md5": checksums.encrypted_parts_md5,
            "encrypted_parts_sha256": checksums.encrypted_parts_sha256,
        }
        self._with_wot(
            ("close", None, file_id),
            "PATCH",
            self._ucs(f"/{file_id}"),
            f"completing upload {file_id}",
            ok=(200, 204),
            json=body,
        )

    def delete_upload(self, file_id: str) -> None:
        """Delete (cancel) a file upload."""
        self._with_wot(
            ("delete", None, file_id),
            "DELETE",
            self._ucs(f"/{file_id}"),
            f"deleting upload {file_id}",
            ok=(200, 204),
        )

    # -- DCS ------------------------------------------------------------------

    def drs_object(self, accession: str) -> models.DrsObject | models.Staging:
        """Ask for a DRS object; ``Staging`` while the archive prepares it."""
        what = f"requesting file {accession}"
        url = f"{self.well_known().dcs_url}/objects/{accession}"
        response = self._with_wot(
            ("download", accession, None), "GET", url, what, ok=(200, 202)
        )
        if response.status_code == 202:
            return models.Staging(accession, _staging_wait_s(response))
        body = self._checked(response, what, (200,))
        return models.parse_drs_object(accession, body, _max_age_s(response))

    def envelope(self, accession: str) -> bytes:
        """Return the file's Crypt4GH header, encrypted for this user."""
        with self._lock:
            prefetched = self._envelopes.pop(accession, None)
        if prefetched is not None:
            return prefetched.result()
        return self._fetch_envelope(accession)

    def _fetch_envelope(self, accession: str) -> bytes:
        what = f"fetching the envelope of {accession}"
        url = f"{self.well_known().dcs_url}/objects/{accession}/envelopes"
        response = self._with_wot(("download", accession, None), "GET", url, what)
        return models.decode_envelope(response.text, accession)


def _check_service_urls(values: models.WellKnownValues) -> None:
    """The services must be https too (loopback excepted), whatever the WKVS says."""
    for name, url in (
        ("wps_api_url", values.wps_url),
        ("ucs_api_url", values.ucs_url),
        ("dcs_api_url", values.dcs_url),
    ):
        refusal = url_refusal(url)
        if refusal:
            raise ApiError(
                f"the well-known values give {name} {redact_text(url)}, "
                f"which {refusal}",
                "Check --wkvs-url: GHGA's services are reached over https only",
            )


def _staging_wait_s(response: requests.Response) -> float:
    """Seconds to wait before asking for a staging file again (its Retry-After).

    Not capped by the backoff: ``GhgaClient`` caps it by the staging deadline.
    """
    retry_after_s = _STAGING_RETRY.retry_after_s(response.headers)
    return _STAGING_WAIT_S if retry_after_s is None else retry_after_s


def _max_age_s(response: requests.Response) -> float | None:
    for directive in response.headers.get("Cache-Control", "").split(","):
        name, _, value = directive.strip().partition("=")
        if name.lower() == "max-age":
            return float(value) if value.isdecimal() else None
    return None
