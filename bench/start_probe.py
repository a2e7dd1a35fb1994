"""Time from process start to the first interactive screen, in a fresh interpreter.

``python bench/start_probe.py tenantry --config PATH`` starts the console the way the
``tenantry`` command does (``cli.main``: configuration, password, the app), headless at
80×24; ``python bench/start_probe.py minimal`` starts a minimal Textual app with one
table. Each prints one JSON line with ``time.monotonic()`` readings (the same clock as
its parent's, which took one just before starting it): ``ready`` when the first frame
is shown and keys are taken (Textual's Ready event), and for the console ``rows`` when
its customers table first holds rows (from the customer snapshot when there is one,
else from the directory). Then it exits at once.
"""

import json
import os
import sys
import time


def _done(**readings: float | None) -> None:
    print(json.dumps(readings), flush=True)
    os._exit(0)  # the measurement is taken; tearing down is not part of it


def minimal() -> None:
    from textual.app import App
    from textual.widgets import DataTable

    class OneTable(App):
        def compose(self):
            yield DataTable()

        def on_mount(self) -> None:
            table = self.query_one(DataTable)
            table.add_columns("Customer", "Reseller", "Domains", "Services")
            table.add_rows([(f"Customer {i}", "Reseller", f"customer-{i}.example", "exchange") for i in range(20)])

        def on_ready(self) -> None:
            _done(ready=time.monotonic())

    OneTable().run(headless=True, size=(80, 24))


def tenantry(argv: list[str]) -> None:
    from cli import main as cli

    args = cli.build_parser().parse_args(argv)
    config, opener = cli.directory_opener(args)
    from tui.app import TenantryApp  # what cli._console imports, in the same order

    readings: dict[str, float | None] = {"ready": None, "rows": None}

    class Probe(TenantryApp):
        def on_ready(self) -> None:
            readings["ready"] = time.monotonic()
            screen = self.screen
            if screen.rows:  # from the customer snapshot, in the first frame
                readings["rows"] = readings["ready"]
                _done(**readings)
            show = screen.show_found

            def shown(found, text, **more) -> None:
                show(found, text, **more)
                readings["rows"] = time.monotonic()
                _done(**readings)

            screen.show_found = shown

    Probe.for_command_line(args, config, opener).run(headless=True, size=(80, 24))


if __name__ == "__main__":
    if sys.argv[1] == "minimal":
        minimal()
    else:
        tenantry(sys.argv[2:])
