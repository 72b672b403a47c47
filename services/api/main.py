"""`accord-api`: run the api service."""

from __future__ import annotations

import uvicorn

from services.api.app import create_app
from services.api.settings import ApiSettings
from shared.logs import configure_logging
from shared.settings import settings_or_exit


def main() -> None:
    settings = settings_or_exit(ApiSettings, "accord-api")
    configure_logging("api", settings.log_level)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
