"""The job queue: Celery on Redis, or on an embedded SQLite broker when no Redis is configured."""
