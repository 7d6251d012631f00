"""Command-line layer: typer commands that parse options into stage configs and call the stages."""
