#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leanvibe.settings")
    from leanvibe.environment import start_embedded_services

    # Development only, and only for unset DATABASE_URL / REDIS_URL: `make run`, `make migrate`
    # and every other command get the embedded servers. Production starts nothing.
    start_embedded_services()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
