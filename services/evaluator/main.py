"""`accord-evaluator`: run one evaluator process (scale out by running more in the same group)."""

from __future__ import annotations

import uvicorn

from services.evaluator.app import create_app
from services.evaluator.settings import EvaluatorSettings
from shared.logs import configure_logging
from shared.settings import settings_or_exit


def main() -> None:
    settings = settings_or_exit(EvaluatorSettings, "accord-evaluator")
    configure_logging("evaluator", settings.log_level)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
