"""Every state change goes through a service here; each writes an audit event in its transaction."""
