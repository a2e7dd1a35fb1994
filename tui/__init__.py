"""The console: the Textual App, shared widgets, styles and the command-line entry point."""
