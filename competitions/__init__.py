"""Built-in competition declarations: <name>/competition.toml each, with its plans in <name>/plans/."""
