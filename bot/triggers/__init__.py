"""What starts a workflow besides a person: signed webhooks (/hooks/NAME) and schedules."""
