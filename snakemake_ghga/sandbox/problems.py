"""HTTP error answers of the sandbox's services, in the shapes the real ones use.

Imports only the stdlib. JSON APIs answer with the httpyexpect body
`{"exception_id", "description", "data"}` (plus `detail`, which the DCS 403
handler of the official client falls back to); the object store answers with
S3's XML `<Error>` document.
"""

import json
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

__all__ = ["HttpProblem", "S3Problem", "json_problem_body", "s3_error_body"]


@dataclass(slots=True)
class HttpProblem(Exception):
    """An error answer of a JSON API: status, exception_id and description."""

    status: int
    exception_id: str
    description: str
    data: dict[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.exception_id}: {self.description}"


@dataclass(slots=True)
class S3Problem(Exception):
    """An error answer of the object store: status and S3 error code."""

    status: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"


def json_problem_body(problem: HttpProblem) -> bytes:
    """Serialize a problem as the httpyexpect JSON body."""
    return json.dumps(
        {
            "exception_id": problem.exception_id,
            "description": problem.description,
            "data": problem.data,
            "detail": problem.description,
        }
    ).encode()


def s3_error_body(problem: S3Problem, resource: str) -> bytes:
    """Serialize a problem as S3's XML error document."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(problem.code)}</Code>"
        f"<Message>{escape(problem.message)}</Message>"
        f"<Resource>{escape(resource)}</Resource>"
        "<RequestId>sandbox</RequestId></Error>"
    ).encode()
