"""What every console service shares: settings, subjects, messages, bus, database, logs, metrics."""
