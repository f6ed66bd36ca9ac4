"""A sandbox configured from the environment, for `uvicorn app.sandbox.asgi:app`.

See `app.sandbox.server` for the variables. Importing this module builds the app (and its
signing key), so only servers import it.
"""

from app.sandbox.app import create_sandbox_app
from app.sandbox.server import config_from_env

config = config_from_env()
app = create_sandbox_app(config)
