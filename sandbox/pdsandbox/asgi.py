"""A sandbox configured from the environment, for `uvicorn pdsandbox.asgi:app`.

See `pdsandbox.server` for the variables. Importing this module builds the app (and its
signing key), so only servers import it.
"""

from pdsandbox.app import create_sandbox_app
from pdsandbox.server import config_from_env, state_file_from_env

config = config_from_env()
app = create_sandbox_app(config, state_file=state_file_from_env())
