"""The admin API under /api/v1/admin, one module per topic. Every route but login needs an admin
session (cookie or Bearer token): ``AdminDep``."""
