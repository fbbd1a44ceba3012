"""One module per `plantwatch` subcommand: each exposes HELP, add_arguments(parser) and main(args) -> int."""
