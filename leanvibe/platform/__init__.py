"""The project's own commands (``manage.py run_platform``, the process supervisor of ``make run``).

Like the URL configurations, this is wiring: it starts every process and makes the demo data
through the apps' services, so it may see every app; nothing imports it."""
