"""The entry point: `lightning fit|validate|test|predict|sweep|report` (see `command.main`)."""
