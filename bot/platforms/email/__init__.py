"""E-mail: approval requests sent by SMTP (``notify: email``), and the page their links open.

``addresses`` finds an approver's address, ``message`` draws the e-mail (pure), ``sender`` hands it to
the SMTP server, ``adapter`` is the outbox's email platform, ``page`` the confirmation page. May import
handlers and everything below; no other platform.
"""
