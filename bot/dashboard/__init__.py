"""The web dashboard: server-rendered pages of runs and each run's live DAG, behind the console's sign-in."""
