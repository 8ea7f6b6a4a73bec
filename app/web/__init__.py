"""Web plumbing shared by every blueprint: htmx helpers, authorization, errors, headers, templating."""
