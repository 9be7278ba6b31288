"""Who is who: user accounts with a role and an organisation, signed in with a password
on the pages and with hashed API tokens on the API."""
