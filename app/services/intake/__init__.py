"""Reading nominations from files: .docx forms, the .xlsx template, .zip bundles (see importer.py)."""
