"""Localhost fakes of vendor APIs, driven by the real client libraries in tests (one module per vendor)."""
