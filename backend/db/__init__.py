"""The database layer: tables (``models``), engines, sessions and migrations (``session``),
keyword-only functions that read and write the tables (``crud``), and password and API-key
hashing (``security``). Nothing here imports torch: the API process uses it."""
