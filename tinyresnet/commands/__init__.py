"""One module per ``tinyresnet`` subcommand: ``add_arguments(parser)`` and ``run(args)``."""
