"""The API's own tables (API keys), applied by ``mebuku db migrate``."""
