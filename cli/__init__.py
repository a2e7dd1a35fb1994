"""The headless command line (``tenantry`` with a subcommand), for scripts and runbooks:
the top layer, above the console (``tui``), which it starts when no subcommand is given."""
