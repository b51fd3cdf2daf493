"""Activities: the step kinds that touch the world (processes, HTTP, Python actions, LLMs)."""
