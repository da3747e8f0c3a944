"""Multi-process tests: the relay worker, Celery, the emulator, PostgreSQL and Redis, all real."""
