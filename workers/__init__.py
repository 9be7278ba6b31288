"""RQ job entry points and worker start-up. Jobs take ids and call module services."""
