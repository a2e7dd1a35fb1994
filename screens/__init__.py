"""One Textual Screen per file. Screens talk to ``core/`` only, never to ldap3 or httpx."""
