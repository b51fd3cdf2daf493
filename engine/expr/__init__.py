"""GitHub Actions' expression language: lexer, parser, evaluator, functions and ``${{ }}`` templates."""
