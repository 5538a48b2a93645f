"""AWS Lambda entry point ``handler.handler``: the lookalike search API behind API Gateway.

Configuration comes from the function's ``LOOKALIKE_*`` environment variables (see
``lookalike.config.Settings``); clients are built once per container, at import.
"""

from lookalike.api.lambda_app import LambdaApp

handler = LambdaApp.from_environ().handle
