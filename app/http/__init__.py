"""HTTP concerns every route shares: request ids and logs (``requests``), security headers (``headers``)."""
