"""Shared plumbing: database, errors, htmx, security, time, forms. Imports no domain package."""
