"""The admin API under /api/v1/admin, one module per topic. Every route but login needs an admin
session (cookie or Bearer token): ``AdminDep``."""

from typing import Any

#: The error every admin-only route can send, for its OpenAPI entry (its body: ``ErrorOut``).
ADMIN_ONLY: dict[int | str, dict[str, Any]] = {401: {"description": "Not logged in, or the session is no longer valid."}}
