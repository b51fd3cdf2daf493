"""Python actions used by the example workflows."""
