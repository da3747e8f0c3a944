#!/usr/bin/env python
"""Django's command-line utility for the example host project."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    if sys.argv[1:2] == ["run_demo"]:
        # The one-process demo is development: DEBUG on (static files served, a
        # generated secret key) unless DJANGO_DEBUG says otherwise.
        os.environ.setdefault("DJANGO_DEBUG", "1")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
