"""Actions for tests/test_activities_action.py, resolved the way a workflow resolves its own actions."""
