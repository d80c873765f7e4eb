"""The CLI's files: paths, contexts (config.json), secrets, scenario-agents.json."""
