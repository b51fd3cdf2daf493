"""Who is at the web console: sign-in (dev picker or OpenID Connect), signed session cookies, CSRF tokens
and the Host/Origin checks. It sits below ``bot.platforms`` and imports only the layers under it."""
