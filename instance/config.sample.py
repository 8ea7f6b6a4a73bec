# Copy to instance/config.py and adjust. Environment variables KEPU_* override these.
# SECRET_KEY = "a long random string"          # required when PRODUCTION = True
# PRODUCTION = True
# SQLALCHEMY_DATABASE_URI = "postgresql+psycopg://kepu:secret@127.0.0.1/kepu"
# RATELIMIT_STORAGE_URI = "redis://127.0.0.1:6379/0"
# LOGIN_RATE_LIMIT = "5 per minute"
